package front

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRequestContext: what context.WithCancel would give a request, as
// the standard library's helpers see it: values from the connection,
// AfterFunc and derived contexts ended by cancel, a stopped AfterFunc
// never run, Done closed.
func TestRequestContext(t *testing.T) {
	type key struct{}
	base := context.WithValue(context.Background(), key{}, "conn")
	c := &requestContext{Context: base}
	if c.Value(key{}) != "conn" || c.Err() != nil {
		t.Fatalf("fresh: value %v, err %v", c.Value(key{}), c.Err())
	}
	ran := make(chan string, 3)
	context.AfterFunc(c, func() { ran <- "after" })
	stop := context.AfterFunc(c, func() { ran <- "stopped" })
	child, cancelChild := context.WithTimeout(c, time.Hour)
	defer cancelChild()
	if !stop() {
		t.Fatal("stop before cancel = false, want true")
	}
	done := c.Done()
	c.cancel()
	c.cancel() // again: nothing
	select {
	case <-done:
	default:
		t.Fatal("Done not closed by cancel")
	}
	select {
	case <-child.Done():
	case <-time.After(waitLimit):
		t.Fatal("a derived context did not end")
	}
	if got := <-ran; got != "after" {
		t.Fatalf("ran %q, want after", got)
	}
	if !errors.Is(c.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
		t.Errorf("Err = %v, child %v; want context.Canceled", c.Err(), child.Err())
	}
	select {
	case <-c.Done(): // a context that ended before Done was asked for
	default:
		t.Error("Done after cancel is not closed")
	}
	late := make(chan struct{})
	context.AfterFunc(c, func() { close(late) })
	select {
	case <-late:
	case <-time.After(waitLimit):
		t.Fatal("AfterFunc on an ended context never ran")
	}
	select {
	case got := <-ran:
		t.Errorf("%q ran, want nothing more", got)
	default:
	}
}
