package sv2

// NewMiningJob is a standard channel's job: the pool has fixed the
// coinbase, so only the merkle root travels.
type NewMiningJob struct {
	ChannelID  uint32
	JobID      uint32
	MinNTime   *uint32 // nil: a future job, activated by SetNewPrevHash
	Version    uint32
	MerkleRoot U256
}

// NewExtendedMiningJob is an extended channel's job. Coinbase =
// CoinbaseTxPrefix ‖ extranonce_prefix ‖ extranonce ‖ CoinbaseTxSuffix.
type NewExtendedMiningJob struct {
	ChannelID             uint32
	JobID                 uint32
	MinNTime              *uint32 // nil: a future job, activated by SetNewPrevHash
	Version               uint32
	VersionRollingAllowed bool
	MerklePath            []U256
	CoinbaseTxPrefix      []byte // B0_64K
	CoinbaseTxSuffix      []byte // B0_64K
}

// SetNewPrevHash starts a new block and activates the named future job.
type SetNewPrevHash struct {
	ChannelID uint32
	JobID     uint32
	PrevHash  U256 // header byte order
	MinNTime  uint32
	NBits     uint32
}

// SubmitSharesStandard is a standard channel's share.
type SubmitSharesStandard struct {
	ChannelID      uint32
	SequenceNumber uint32
	JobID          uint32
	Nonce          uint32
	NTime          uint32
	Version        uint32 // full nVersion
}

// SubmitSharesExtended is an extended channel's share. Extranonce is the
// rolled part only (exactly the channel's extranonce_size bytes), not the
// prefix.
type SubmitSharesExtended struct {
	ChannelID      uint32
	SequenceNumber uint32
	JobID          uint32
	Nonce          uint32
	NTime          uint32
	Version        uint32 // full nVersion, rolled bits included
	Extranonce     []byte // B0_32
}

// SubmitSharesSuccess acknowledges shares up to LastSequenceNumber; a pool
// may batch, so one Success can answer several submits.
type SubmitSharesSuccess struct {
	ChannelID               uint32
	LastSequenceNumber      uint32
	NewSubmitsAcceptedCount uint32
	NewSharesSum            uint64
}

// SubmitSharesError rejects one share.
type SubmitSharesError struct {
	ChannelID      uint32
	SequenceNumber uint32
	ErrorCode      string
}

// SubmitShares.Error codes as SRI sends them.
const (
	ErrInvalidChannelID           = "invalid-channel-id"
	ErrInvalidShare               = "invalid-share"
	ErrStaleShare                 = "stale-share"
	ErrInvalidJobID               = "invalid-job-id"
	ErrDifficultyTooLow           = "difficulty-too-low"
	ErrDuplicateShare             = "duplicate-share"
	ErrBadExtranonceSize          = "bad-extranonce-size"
	ErrVersionRollingNotAllowed   = "version-rolling-not-allowed"
	ErrInvalidNonRollableVersion  = "invalid-non-rollable-version-bit"
	ErrOpenChannelUnknownUser     = "unknown-user"
	ErrOpenChannelMaxTargetTooLow = "max-target-out-of-range"
	ErrOpenChannelExtranonceSize  = "min-extranonce-size-too-large"
)

func (*NewMiningJob) MsgType() uint8         { return TypeNewMiningJob }
func (*NewExtendedMiningJob) MsgType() uint8 { return TypeNewExtendedMiningJob }
func (*SetNewPrevHash) MsgType() uint8       { return TypeSetNewPrevHash }
func (*SubmitSharesStandard) MsgType() uint8 { return TypeSubmitSharesStandard }
func (*SubmitSharesExtended) MsgType() uint8 { return TypeSubmitSharesExtended }
func (*SubmitSharesSuccess) MsgType() uint8  { return TypeSubmitSharesSuccess }
func (*SubmitSharesError) MsgType() uint8    { return TypeSubmitSharesError }

func (m *NewMiningJob) AppendPayload(b []byte) []byte {
	b = appendOptU32(appendU32(appendU32(b, m.ChannelID), m.JobID), m.MinNTime)
	return append(appendU32(b, m.Version), m.MerkleRoot[:]...)
}

func (m *NewExtendedMiningJob) AppendPayload(b []byte) []byte {
	b = appendOptU32(appendU32(appendU32(b, m.ChannelID), m.JobID), m.MinNTime)
	b = appendSeqU256(appendBool(appendU32(b, m.Version), m.VersionRollingAllowed), m.MerklePath)
	return appendB0_64K(appendB0_64K(b, m.CoinbaseTxPrefix), m.CoinbaseTxSuffix)
}

func (m *SetNewPrevHash) AppendPayload(b []byte) []byte {
	b = append(appendU32(appendU32(b, m.ChannelID), m.JobID), m.PrevHash[:]...)
	return appendU32(appendU32(b, m.MinNTime), m.NBits)
}

func (m *SubmitSharesStandard) AppendPayload(b []byte) []byte {
	b = appendU32(appendU32(appendU32(b, m.ChannelID), m.SequenceNumber), m.JobID)
	return appendU32(appendU32(appendU32(b, m.Nonce), m.NTime), m.Version)
}

func (m *SubmitSharesExtended) AppendPayload(b []byte) []byte {
	b = appendU32(appendU32(appendU32(b, m.ChannelID), m.SequenceNumber), m.JobID)
	b = appendU32(appendU32(appendU32(b, m.Nonce), m.NTime), m.Version)
	return appendB0_32(b, m.Extranonce)
}

func (m *SubmitSharesSuccess) AppendPayload(b []byte) []byte {
	b = appendU32(appendU32(appendU32(b, m.ChannelID), m.LastSequenceNumber), m.NewSubmitsAcceptedCount)
	return appendU64(b, m.NewSharesSum)
}

func (m *SubmitSharesError) AppendPayload(b []byte) []byte {
	return appendStr0_255(appendU32(appendU32(b, m.ChannelID), m.SequenceNumber), m.ErrorCode)
}

func init() {
	register(TypeNewMiningJob, func(r *reader) Message {
		return &NewMiningJob{ChannelID: r.u32("channel_id"), JobID: r.u32("job_id"), MinNTime: r.optU32("min_ntime"),
			Version: r.u32("version"), MerkleRoot: r.u256("merkle_root")}
	})
	register(TypeNewExtendedMiningJob, func(r *reader) Message {
		return &NewExtendedMiningJob{ChannelID: r.u32("channel_id"), JobID: r.u32("job_id"), MinNTime: r.optU32("min_ntime"),
			Version: r.u32("version"), VersionRollingAllowed: r.boolean("version_rolling_allowed"),
			MerklePath: r.seqU256("merkle_path"), CoinbaseTxPrefix: r.b0_64K("coinbase_tx_prefix"),
			CoinbaseTxSuffix: r.b0_64K("coinbase_tx_suffix")}
	})
	register(TypeSetNewPrevHash, func(r *reader) Message {
		return &SetNewPrevHash{ChannelID: r.u32("channel_id"), JobID: r.u32("job_id"), PrevHash: r.u256("prev_hash"),
			MinNTime: r.u32("min_ntime"), NBits: r.u32("nbits")}
	})
	register(TypeSubmitSharesStandard, func(r *reader) Message {
		return &SubmitSharesStandard{ChannelID: r.u32("channel_id"), SequenceNumber: r.u32("sequence_number"),
			JobID: r.u32("job_id"), Nonce: r.u32("nonce"), NTime: r.u32("ntime"), Version: r.u32("version")}
	})
	register(TypeSubmitSharesExtended, func(r *reader) Message {
		return &SubmitSharesExtended{ChannelID: r.u32("channel_id"), SequenceNumber: r.u32("sequence_number"),
			JobID: r.u32("job_id"), Nonce: r.u32("nonce"), NTime: r.u32("ntime"), Version: r.u32("version"),
			Extranonce: r.b0_32("extranonce")}
	})
	register(TypeSubmitSharesSuccess, func(r *reader) Message {
		return &SubmitSharesSuccess{ChannelID: r.u32("channel_id"), LastSequenceNumber: r.u32("last_sequence_number"),
			NewSubmitsAcceptedCount: r.u32("new_submits_accepted_count"), NewSharesSum: r.u64("new_shares_sum")}
	})
	register(TypeSubmitSharesError, func(r *reader) Message {
		return &SubmitSharesError{ChannelID: r.u32("channel_id"), SequenceNumber: r.u32("sequence_number"),
			ErrorCode: r.str0_255("error_code")}
	})
}
