package sv2

// OpenStandardMiningChannel asks for a header-only channel: one per miner
// in per-miner mode, so the pool sees every worker by user_identity.
type OpenStandardMiningChannel struct {
	RequestID       uint32
	UserIdentity    string
	NominalHashRate float32 // hashes per second
	MaxTarget       U256
}

// OpenStandardMiningChannelSuccess opens a standard channel.
type OpenStandardMiningChannelSuccess struct {
	RequestID        uint32
	ChannelID        uint32
	Target           U256
	ExtranoncePrefix []byte // B0_32
	GroupChannelID   uint32
}

// OpenExtendedMiningChannel asks for a channel whose jobs carry the coinbase,
// so the client rolls extranonce itself (aggregated mode).
type OpenExtendedMiningChannel struct {
	RequestID         uint32
	UserIdentity      string
	NominalHashRate   float32
	MaxTarget         U256
	MinExtranonceSize uint16
}

// OpenExtendedMiningChannelSuccess opens an extended channel. Pools before
// sv2-spec 7babb939 (SRI ≤ v1.6.0) send no group_channel_id; decoding reads
// it only when 4 bytes remain and records which layout arrived, and encoding
// writes the layout HasGroupChannelID selects.
type OpenExtendedMiningChannelSuccess struct {
	RequestID         uint32
	ChannelID         uint32
	Target            U256
	ExtranonceSize    uint16 // bytes the client rolls after the prefix
	ExtranoncePrefix  []byte // B0_32
	GroupChannelID    uint32
	HasGroupChannelID bool
}

// OpenMiningChannelError refuses either kind of channel.
type OpenMiningChannelError struct {
	RequestID uint32
	ErrorCode string
}

// UpdateChannel reports a new hash rate and the largest target the client
// accepts.
type UpdateChannel struct {
	ChannelID       uint32
	NominalHashRate float32
	MaximumTarget   U256
}

// UpdateChannelError refuses an UpdateChannel.
type UpdateChannelError struct {
	ChannelID uint32
	ErrorCode string
}

// CloseChannel ends a channel (either side).
type CloseChannel struct {
	ChannelID  uint32
	ReasonCode string
}

// SetExtranoncePrefix replaces a channel's extranonce prefix for the jobs
// that follow.
type SetExtranoncePrefix struct {
	ChannelID        uint32
	ExtranoncePrefix []byte
}

// SetTarget sets a channel's share target for the shares that follow.
type SetTarget struct {
	ChannelID     uint32
	MaximumTarget U256
}

// SetGroupChannel puts channels into a group whose jobs arrive once.
type SetGroupChannel struct {
	GroupChannelID uint32
	ChannelIDs     []uint32 // SEQ0_64K[U32]
}

func (*OpenStandardMiningChannel) MsgType() uint8        { return TypeOpenStandardMiningChannel }
func (*OpenStandardMiningChannelSuccess) MsgType() uint8 { return TypeOpenStandardMiningChannelSuccess }
func (*OpenExtendedMiningChannel) MsgType() uint8        { return TypeOpenExtendedMiningChannel }
func (*OpenExtendedMiningChannelSuccess) MsgType() uint8 { return TypeOpenExtendedMiningChannelSuccess }
func (*OpenMiningChannelError) MsgType() uint8           { return TypeOpenMiningChannelError }
func (*UpdateChannel) MsgType() uint8                    { return TypeUpdateChannel }
func (*UpdateChannelError) MsgType() uint8               { return TypeUpdateChannelError }
func (*CloseChannel) MsgType() uint8                     { return TypeCloseChannel }
func (*SetExtranoncePrefix) MsgType() uint8              { return TypeSetExtranoncePrefix }
func (*SetTarget) MsgType() uint8                        { return TypeSetTarget }
func (*SetGroupChannel) MsgType() uint8                  { return TypeSetGroupChannel }

func (m *OpenStandardMiningChannel) AppendPayload(b []byte) []byte {
	b = appendStr0_255(appendU32(b, m.RequestID), m.UserIdentity)
	return append(appendF32(b, m.NominalHashRate), m.MaxTarget[:]...)
}

func (m *OpenStandardMiningChannelSuccess) AppendPayload(b []byte) []byte {
	b = append(appendU32(appendU32(b, m.RequestID), m.ChannelID), m.Target[:]...)
	return appendU32(appendB0_32(b, m.ExtranoncePrefix), m.GroupChannelID)
}

func (m *OpenExtendedMiningChannel) AppendPayload(b []byte) []byte {
	b = appendStr0_255(appendU32(b, m.RequestID), m.UserIdentity)
	b = append(appendF32(b, m.NominalHashRate), m.MaxTarget[:]...)
	return appendU16(b, m.MinExtranonceSize)
}

func (m *OpenExtendedMiningChannelSuccess) AppendPayload(b []byte) []byte {
	b = append(appendU32(appendU32(b, m.RequestID), m.ChannelID), m.Target[:]...)
	b = appendB0_32(appendU16(b, m.ExtranonceSize), m.ExtranoncePrefix)
	if m.HasGroupChannelID {
		b = appendU32(b, m.GroupChannelID)
	}
	return b
}

func (m *OpenMiningChannelError) AppendPayload(b []byte) []byte {
	return appendStr0_255(appendU32(b, m.RequestID), m.ErrorCode)
}

func (m *UpdateChannel) AppendPayload(b []byte) []byte {
	return append(appendF32(appendU32(b, m.ChannelID), m.NominalHashRate), m.MaximumTarget[:]...)
}

func (m *UpdateChannelError) AppendPayload(b []byte) []byte {
	return appendStr0_255(appendU32(b, m.ChannelID), m.ErrorCode)
}

func (m *CloseChannel) AppendPayload(b []byte) []byte {
	return appendStr0_255(appendU32(b, m.ChannelID), m.ReasonCode)
}

func (m *SetExtranoncePrefix) AppendPayload(b []byte) []byte {
	return appendB0_32(appendU32(b, m.ChannelID), m.ExtranoncePrefix)
}

func (m *SetTarget) AppendPayload(b []byte) []byte {
	return append(appendU32(b, m.ChannelID), m.MaximumTarget[:]...)
}

func (m *SetGroupChannel) AppendPayload(b []byte) []byte {
	ids := m.ChannelIDs
	if len(ids) > 0xffff {
		ids = ids[:0xffff]
	}
	b = appendU16(appendU32(b, m.GroupChannelID), uint16(len(ids)))
	for _, id := range ids {
		b = appendU32(b, id)
	}
	return b
}

func init() {
	register(TypeOpenStandardMiningChannel, func(r *reader) Message {
		return &OpenStandardMiningChannel{RequestID: r.u32("request_id"), UserIdentity: r.str0_255("user_identity"),
			NominalHashRate: r.f32("nominal_hash_rate"), MaxTarget: r.u256("max_target")}
	})
	register(TypeOpenStandardMiningChannelSuccess, func(r *reader) Message {
		return &OpenStandardMiningChannelSuccess{RequestID: r.u32("request_id"), ChannelID: r.u32("channel_id"),
			Target: r.u256("target"), ExtranoncePrefix: r.b0_32("extranonce_prefix"), GroupChannelID: r.u32("group_channel_id")}
	})
	register(TypeOpenExtendedMiningChannel, func(r *reader) Message {
		return &OpenExtendedMiningChannel{RequestID: r.u32("request_id"), UserIdentity: r.str0_255("user_identity"),
			NominalHashRate: r.f32("nominal_hash_rate"), MaxTarget: r.u256("max_target"),
			MinExtranonceSize: r.u16("min_extranonce_size")}
	})
	register(TypeOpenExtendedMiningChannelSuccess, func(r *reader) Message {
		m := &OpenExtendedMiningChannelSuccess{RequestID: r.u32("request_id"), ChannelID: r.u32("channel_id"),
			Target: r.u256("target"), ExtranonceSize: r.u16("extranonce_size"), ExtranoncePrefix: r.b0_32("extranonce_prefix")}
		if r.err == nil && len(r.b) == 4 {
			m.GroupChannelID, m.HasGroupChannelID = r.u32("group_channel_id"), true
		}
		return m
	})
	register(TypeOpenMiningChannelError, func(r *reader) Message {
		return &OpenMiningChannelError{RequestID: r.u32("request_id"), ErrorCode: r.str0_255("error_code")}
	})
	register(TypeUpdateChannel, func(r *reader) Message {
		return &UpdateChannel{ChannelID: r.u32("channel_id"), NominalHashRate: r.f32("nominal_hash_rate"),
			MaximumTarget: r.u256("maximum_target")}
	})
	register(TypeUpdateChannelError, func(r *reader) Message {
		return &UpdateChannelError{ChannelID: r.u32("channel_id"), ErrorCode: r.str0_255("error_code")}
	})
	register(TypeCloseChannel, func(r *reader) Message {
		return &CloseChannel{ChannelID: r.u32("channel_id"), ReasonCode: r.str0_255("reason_code")}
	})
	register(TypeSetExtranoncePrefix, func(r *reader) Message {
		return &SetExtranoncePrefix{ChannelID: r.u32("channel_id"), ExtranoncePrefix: r.b0_32("extranonce_prefix")}
	})
	register(TypeSetTarget, func(r *reader) Message {
		return &SetTarget{ChannelID: r.u32("channel_id"), MaximumTarget: r.u256("maximum_target")}
	})
	register(TypeSetGroupChannel, func(r *reader) Message {
		return &SetGroupChannel{GroupChannelID: r.u32("group_channel_id"), ChannelIDs: r.seqU32_64K("channel_ids")}
	})
}
