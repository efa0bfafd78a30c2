package certs

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// expiryWarnDays is how close to its end a served certificate must be for
// the daily warning.
const expiryWarnDays = 30

// maxExpiryCheck is the longest WatchExpiry sleeps between looks at the
// certificate: a new certificate is noticed within it.
const maxExpiryCheck = time.Hour

// WatchExpiry watches the certificate that status reports, whatever its
// source and whether or not its files are watched, until ctx is done. It
// logs a warning when fewer than 30 days are left (at most once a day per
// certificate), and one error line at the moment the served certificate
// expires: from then on every client fails to verify it. The caller owns
// the goroutine that runs it.
func WatchExpiry(ctx context.Context, status func() Status, log zerolog.Logger) {
	var warned time.Time           // the last warning
	var expiredSerial, last string // the certificate whose expiry was logged; the one last seen
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		wait := maxExpiryCheck
		if leaf := status().Leaf; leaf != nil {
			serial := leaf.SerialNumber.Text(16)
			if serial != last {
				warned, last = time.Time{}, serial // a new certificate: warn afresh
			}
			left := leaf.NotAfter.Sub(now)
			switch {
			case left <= 0 && expiredSerial != serial:
				expiredSerial = serial
				log.Error().Time(keyNotAfter, leaf.NotAfter).Str(keySerial, serial).
					Msg("the served certificate has expired: clients fail to verify it until it is replaced")
			case left > 0 && left < expiryWarnDays*24*time.Hour && now.Sub(warned) >= 24*time.Hour:
				warned = now
				log.Warn().Time(keyNotAfter, leaf.NotAfter).Int("days_left", int(left.Hours()/24)).Str(keySerial, serial).
					Msg("the served certificate expires soon: renew it and replace it")
			}
			if left > 0 && left < wait {
				wait = left // wake at the moment it expires
			}
		}
		t.Reset(wait)
	}
}
