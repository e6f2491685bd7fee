package audit

import (
	"context"
	"fmt"
	"log/syslog"
	"strings"
	"sync"
)

var facilities = map[string]syslog.Priority{
	"KERN": syslog.LOG_KERN, "USER": syslog.LOG_USER, "MAIL": syslog.LOG_MAIL, "DAEMON": syslog.LOG_DAEMON,
	"AUTH": syslog.LOG_AUTH, "SYSLOG": syslog.LOG_SYSLOG, "LPR": syslog.LOG_LPR, "NEWS": syslog.LOG_NEWS,
	"UUCP": syslog.LOG_UUCP, "CRON": syslog.LOG_CRON, "AUTHPRIV": syslog.LOG_AUTHPRIV, "FTP": syslog.LOG_FTP,
	"LOCAL0": syslog.LOG_LOCAL0, "LOCAL1": syslog.LOG_LOCAL1, "LOCAL2": syslog.LOG_LOCAL2, "LOCAL3": syslog.LOG_LOCAL3,
	"LOCAL4": syslog.LOG_LOCAL4, "LOCAL5": syslog.LOG_LOCAL5, "LOCAL6": syslog.LOG_LOCAL6, "LOCAL7": syslog.LOG_LOCAL7,
}

func dialSyslog(s Settings) (*syslog.Writer, error) {
	prio := facilities[strings.ToUpper(s.Facility)] | syslog.LOG_INFO
	return syslog.Dial(s.SyslogNetwork, s.SyslogAddress, prio, s.Tag)
}

// syslogSink sends each line as one syslog message, to the local daemon or a remote one.
// Syslog acknowledges nothing, so delivery is at least once.
type syslogSink struct {
	s  Settings
	mu sync.Mutex
	w  *syslog.Writer
}

func newSyslogSink(s Settings) (sink, error) { return &syslogSink{s: s}, nil }

func (s *syslogSink) Write(_ context.Context, lines [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		w, err := dialSyslog(s.s)
		if err != nil {
			return 0, fmt.Errorf("syslog: %w", err)
		}
		s.w = w
	}
	for i, l := range lines {
		if err := s.w.Info(string(l)); err != nil {
			s.w.Close()
			s.w = nil
			return i, fmt.Errorf("syslog: %w", err)
		}
	}
	return len(lines), nil
}

func (s *syslogSink) Reopen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
}

func (s *syslogSink) Close() error {
	s.Reopen()
	return nil
}
