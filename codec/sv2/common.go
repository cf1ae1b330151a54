package sv2

import "fmt"

// Message types of the common and Mining protocols (sv2-spec 08).
const (
	TypeSetupConnection                  uint8 = 0x00
	TypeSetupConnectionSuccess           uint8 = 0x01
	TypeSetupConnectionError             uint8 = 0x02
	TypeChannelEndpointChanged           uint8 = 0x03
	TypeReconnect                        uint8 = 0x04
	TypeOpenStandardMiningChannel        uint8 = 0x10
	TypeOpenStandardMiningChannelSuccess uint8 = 0x11
	TypeOpenMiningChannelError           uint8 = 0x12
	TypeOpenExtendedMiningChannel        uint8 = 0x13
	TypeOpenExtendedMiningChannelSuccess uint8 = 0x14
	TypeNewMiningJob                     uint8 = 0x15
	TypeUpdateChannel                    uint8 = 0x16
	TypeUpdateChannelError               uint8 = 0x17
	TypeCloseChannel                     uint8 = 0x18
	TypeSetExtranoncePrefix              uint8 = 0x19
	TypeSubmitSharesStandard             uint8 = 0x1a
	TypeSubmitSharesExtended             uint8 = 0x1b
	TypeSubmitSharesSuccess              uint8 = 0x1c
	TypeSubmitSharesError                uint8 = 0x1d
	TypeNewExtendedMiningJob             uint8 = 0x1f
	TypeSetNewPrevHash                   uint8 = 0x20
	TypeSetTarget                        uint8 = 0x21
	TypeSetGroupChannel                  uint8 = 0x25
)

var msgNames = map[uint8]string{
	TypeSetupConnection:                  "SetupConnection",
	TypeSetupConnectionSuccess:           "SetupConnection.Success",
	TypeSetupConnectionError:             "SetupConnection.Error",
	TypeChannelEndpointChanged:           "ChannelEndpointChanged",
	TypeReconnect:                        "Reconnect",
	TypeOpenStandardMiningChannel:        "OpenStandardMiningChannel",
	TypeOpenStandardMiningChannelSuccess: "OpenStandardMiningChannel.Success",
	TypeOpenMiningChannelError:           "OpenMiningChannel.Error",
	TypeOpenExtendedMiningChannel:        "OpenExtendedMiningChannel",
	TypeOpenExtendedMiningChannelSuccess: "OpenExtendedMiningChannel.Success",
	TypeNewMiningJob:                     "NewMiningJob",
	TypeUpdateChannel:                    "UpdateChannel",
	TypeUpdateChannelError:               "UpdateChannel.Error",
	TypeCloseChannel:                     "CloseChannel",
	TypeSetExtranoncePrefix:              "SetExtranoncePrefix",
	TypeSubmitSharesStandard:             "SubmitSharesStandard",
	TypeSubmitSharesExtended:             "SubmitSharesExtended",
	TypeSubmitSharesSuccess:              "SubmitShares.Success",
	TypeSubmitSharesError:                "SubmitShares.Error",
	TypeNewExtendedMiningJob:             "NewExtendedMiningJob",
	TypeSetNewPrevHash:                   "SetNewPrevHash",
	TypeSetTarget:                        "SetTarget",
	TypeSetGroupChannel:                  "SetGroupChannel",
}

// MsgName is the specification's name of a core message type.
func MsgName(t uint8) string {
	if n, ok := msgNames[t]; ok {
		return n
	}
	return fmt.Sprintf("msg_type 0x%02x", t)
}

// IsChannelMsg reports whether frames of this core message type carry the
// channel_msg bit (sv2-spec 08 table).
func IsChannelMsg(t uint8) bool {
	switch t {
	case TypeChannelEndpointChanged, TypeNewMiningJob, TypeUpdateChannel, TypeUpdateChannelError,
		TypeCloseChannel, TypeSetExtranoncePrefix, TypeSubmitSharesStandard, TypeSubmitSharesExtended,
		TypeSubmitSharesSuccess, TypeSubmitSharesError, 0x1e, TypeNewExtendedMiningJob, TypeSetNewPrevHash,
		TypeSetTarget, 0x22, 0x23, 0x24:
		return true
	}
	return false
}

var decoders = map[uint8]func(*reader) Message{}

func register(t uint8, d func(*reader) Message) { decoders[t] = d }

// SetupConnection protocols and flags.
const (
	ProtocolMining = 0

	// Mining-protocol SetupConnection flags (client).
	FlagRequiresStandardJobs   = 1 << 0
	FlagRequiresWorkSelection  = 1 << 1
	FlagRequiresVersionRolling = 1 << 2

	// Mining-protocol SetupConnection.Success flags (server).
	FlagRequiresFixedVersion     = 1 << 0
	FlagRequiresExtendedChannels = 1 << 1

	// Version is the only protocol version there is.
	Version = 2
)

// SetupConnection opens every connection (client → server).
type SetupConnection struct {
	Protocol        uint8
	MinVersion      uint16
	MaxVersion      uint16
	Flags           uint32
	EndpointHost    string
	EndpointPort    uint16
	Vendor          string
	HardwareVersion string
	Firmware        string
	DeviceID        string
}

// SetupConnectionSuccess accepts a SetupConnection.
type SetupConnectionSuccess struct {
	UsedVersion uint16
	Flags       uint32
}

// SetupConnectionError refuses a SetupConnection.
type SetupConnectionError struct {
	Flags     uint32
	ErrorCode string
}

// ChannelEndpointChanged tells that a channel now ends elsewhere (e.g. a
// proxy moved it); its jobs and shares start over.
type ChannelEndpointChanged struct{ ChannelID uint32 }

// Reconnect asks the client to connect elsewhere; an empty host or a zero
// port mean "the current one".
type Reconnect struct {
	NewHost string
	NewPort uint16
}

func (*SetupConnection) MsgType() uint8        { return TypeSetupConnection }
func (*SetupConnectionSuccess) MsgType() uint8 { return TypeSetupConnectionSuccess }
func (*SetupConnectionError) MsgType() uint8   { return TypeSetupConnectionError }
func (*ChannelEndpointChanged) MsgType() uint8 { return TypeChannelEndpointChanged }
func (*Reconnect) MsgType() uint8              { return TypeReconnect }

func (m *SetupConnection) AppendPayload(b []byte) []byte {
	b = append(b, m.Protocol)
	b = appendU16(appendU16(b, m.MinVersion), m.MaxVersion)
	b = appendU32(b, m.Flags)
	b = appendU16(appendStr0_255(b, m.EndpointHost), m.EndpointPort)
	b = appendStr0_255(appendStr0_255(b, m.Vendor), m.HardwareVersion)
	return appendStr0_255(appendStr0_255(b, m.Firmware), m.DeviceID)
}

func (m *SetupConnectionSuccess) AppendPayload(b []byte) []byte {
	return appendU32(appendU16(b, m.UsedVersion), m.Flags)
}

func (m *SetupConnectionError) AppendPayload(b []byte) []byte {
	return appendStr0_255(appendU32(b, m.Flags), m.ErrorCode)
}

func (m *ChannelEndpointChanged) AppendPayload(b []byte) []byte { return appendU32(b, m.ChannelID) }

func (m *Reconnect) AppendPayload(b []byte) []byte {
	return appendU16(appendStr0_255(b, m.NewHost), m.NewPort)
}

func init() {
	register(TypeSetupConnection, func(r *reader) Message {
		return &SetupConnection{
			Protocol: r.u8("protocol"), MinVersion: r.u16("min_version"), MaxVersion: r.u16("max_version"),
			Flags: r.u32("flags"), EndpointHost: r.str0_255("endpoint_host"), EndpointPort: r.u16("endpoint_port"),
			Vendor: r.str0_255("vendor"), HardwareVersion: r.str0_255("hardware_version"),
			Firmware: r.str0_255("firmware"), DeviceID: r.str0_255("device_id"),
		}
	})
	register(TypeSetupConnectionSuccess, func(r *reader) Message {
		return &SetupConnectionSuccess{UsedVersion: r.u16("used_version"), Flags: r.u32("flags")}
	})
	register(TypeSetupConnectionError, func(r *reader) Message {
		return &SetupConnectionError{Flags: r.u32("flags"), ErrorCode: r.str0_255("error_code")}
	})
	register(TypeChannelEndpointChanged, func(r *reader) Message {
		return &ChannelEndpointChanged{ChannelID: r.u32("channel_id")}
	})
	register(TypeReconnect, func(r *reader) Message {
		return &Reconnect{NewHost: r.str0_255("new_host"), NewPort: r.u16("new_port")}
	})
}
