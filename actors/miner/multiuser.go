package miner

// Multi-user listeners: the miner's authorize name chooses its pool
// sub-account ("alice.rig7" works for "alice"). The session applies the
// naming rules and the allow-list itself, so those refusals cost no round
// trip; the coordinator, which holds the listener's sub-accounts and their
// links, admits the sub-account or refuses it at the cap, and only then is
// the authorize answered.

import (
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/internal/subaccount"
	"github.com/sirupsen/logrus"
)

// multiAuth is a multi-user miner's sub-account, and its authorize request
// id while the coordinator has not answered (nil afterwards). A pointer in
// the session, so single-user sessions do not carry it.
type multiAuth struct {
	sub string
	req []byte
}

// refuse answers a multi-user authorize that names no usable sub-account;
// the miner may try again with another name.
func (s *Session) refuse(id []byte, user string, ref *subaccount.Refusal) {
	s.env.Stats.Refused.Add(string(ref.Reason))
	s.env.Limiter.Warn("subaccount-"+string(ref.Reason), logrus.Fields{"remote": s.info.Remote.String(), "user": truncate(user, 80)}, "multi-user: authorize refused: "+ref.Msg)
	s.reply(func(d []byte) []byte { return codec.AppendError(d, id, ref.Code, ref.Msg) })
}

// admitted is the coordinator's answer to a multi-user authorize. After a
// coordinator restart it comes again for a miner answered long ago; a
// refusal then (another sub-account took the room meanwhile) can only
// close the miner, whose authorize was accepted.
func (s *Session) admitted(m *wire.Admitted) {
	if s.multi == nil {
		return
	}
	id := s.multi.req
	s.multi.req = nil
	if s.authorized {
		if m.Code != 0 {
			// Counted out here: the coordinator never counted it in.
			s.env.Stats.MinersAuth.Add(-1)
			s.close("sub-account refused after a coordinator restart: " + m.Text)
		}
		return
	}
	if id == nil {
		return
	}
	if m.Code != 0 {
		s.multi = nil
		s.reply(func(d []byte) []byte { return codec.AppendError(d, id, m.Code, m.Text) })
		return
	}
	s.authorized = true
	s.st.SetIdentity(s.info.UserAgent, s.multi.sub+"."+s.info.Worker)
	s.env.Stats.MinersAuth.Add(1)
	s.reply(func(d []byte) []byte { return codec.AppendTrue(d, id) })
}
