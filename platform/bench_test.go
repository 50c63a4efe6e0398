package platform

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRunToFirstByte measures, per one-off, POST run -> operation done
// -> CONNECT -> the first byte of `echo x` on a terminal, as a client on the
// same host sees it, and reports the median (target: under 25 ms).
// "warm": between one-offs (untimed) the platform gets its spare inits
// ready, as between the runs of people at their keyboards. "back-to-back":
// one-offs as fast as they go, faster than spares can be made.
func BenchmarkRunToFirstByte(b *testing.B) {
	b.Run("warm", func(b *testing.B) { benchRunToFirstByte(b, true) })
	b.Run("back-to-back", func(b *testing.B) { benchRunToFirstByte(b, false) })
}

func benchRunToFirstByte(b *testing.B, warm bool) {
	tp := startPlatform(b, Config{AppQuota: 1000, TotalQuota: 1000})
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		if warm {
			b.StopTimer()
			waitSpares(b, tp)
			b.StartTimer()
		}
		start := time.Now()
		o := tp.run("bench", "echo x", true, nil)
		_, br := o.attach()
		if _, err := br.ReadByte(); err != nil {
			b.Fatalf("first byte: %v", err)
		}
		lat = append(lat, time.Since(start))
		io.Copy(io.Discard, br)
		if status, code := o.wait(); status != 200 || code != 0 {
			b.Fatalf("wait: %d %d", status, code)
		}
	}
	slices.Sort(lat)
	// The target is for a platform at rest (its spare inits ready);
	// back-to-back runs are reported for information.
	if median := lat[len(lat)/2]; warm && median >= firstByteTarget {
		b.Errorf("run to first byte: median %s, target under %s", median, firstByteTarget)
	}
	b.ReportMetric(ms(lat[len(lat)/2]), "median-ms")
	b.ReportMetric(ms(lat[len(lat)*9/10]), "p90-ms")
	b.ReportMetric(0, "ns/op")
}

// waitSpares waits until the platform's spare inits are all ready.
func waitSpares(b testing.TB, tp *testPlatform) {
	pool := tp.runner.pool
	if pool == nil {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(pool.spares) < cap(pool.spares) {
		if time.Now().After(deadline) {
			b.Fatal("spare inits not ready in 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// The targets the benchmarks check.
const (
	firstByteTarget  = 25 * time.Millisecond
	throughputTarget = 0.7 // of a pipe relayed over loopback TCP
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// throughputBytes is the size of each transfer of BenchmarkPipeThroughput.
const throughputBytes = 64 << 20

// throughputCommand prints one line, waits for a line on its stdin (the
// go), then writes throughputBytes: the transfer is timed from the go to
// EOF, so neither side's start-up is in it.
var throughputCommand = "echo; read go; exec head -c " + strconv.Itoa(throughputBytes) + " /dev/zero"

// BenchmarkPipeThroughput measures a pipe-mode one-off streaming to its
// client against a baseline that makes the same copies without the
// platform: the same command writing into a plain os.Pipe, which a relay
// in this process reads and writes into a loopback TCP connection, read
// here (relayTransfer). A plain pipe alone runs at 0.7 to 3.4 GiB/s on
// machines of one kind, so a ratio to it measured the machine; the socket
// copies bound both sides alike. Both run in each iteration, in
// alternating order. It reports the median rates and the median of the
// iterations' ratios (target: at least 0.7): a pause of the machine
// spoils one pair, not the figure. Each transfer starts on a platform at
// rest, its spare inits ready: a one-off's start has the platform start a
// spare init for the next one, a one-time cost that
// BenchmarkRunToFirstByte's back-to-back runs measure and that would
// otherwise fall inside the first ~50 ms of the stream.
func BenchmarkPipeThroughput(b *testing.B) {
	tp := startPlatform(b, Config{AppQuota: 1000, TotalQuota: 1000})
	buf := make([]byte, 256<<10)
	var platformRates, relayRates, ratios []float64
	b.SetBytes(2 * throughputBytes)
	i := 0
	for b.Loop() {
		var platform, relay float64
		if i%2 == 0 {
			platform = platformTransfer(b, tp, buf)
			relay = relayTransfer(b, tp, buf)
		} else {
			relay = relayTransfer(b, tp, buf)
			platform = platformTransfer(b, tp, buf)
		}
		i++
		platformRates = append(platformRates, platform)
		relayRates = append(relayRates, relay)
		ratios = append(ratios, platform/relay)
	}
	ratio := medianFloat(ratios)
	b.ReportMetric(medianFloat(platformRates), "platform-MiB/s")
	b.ReportMetric(medianFloat(relayRates), "relay-MiB/s")
	b.ReportMetric(ratio, "ratio")
	slices.Sort(ratios)
	b.Logf("median of %d: platform %.0f MiB/s, pipe relayed over loopback TCP %.0f MiB/s, ratio %.2f (lowest %.2f, highest %.2f)",
		len(ratios), medianFloat(platformRates), medianFloat(relayRates), ratio, ratios[0], ratios[len(ratios)-1])
	if ratio < throughputTarget {
		b.Errorf("pipe-mode throughput: %.0f MiB/s over a relayed pipe's %.0f MiB/s = %.2f, target at least %.1f",
			medianFloat(platformRates), medianFloat(relayRates), ratio, throughputTarget)
	}
}

// platformTransfer runs throughputCommand as a pipe-mode one-off and
// answers its rate in MiB/s.
func platformTransfer(b *testing.B, tp *testPlatform, buf []byte) float64 {
	o := tp.run("bench", throughputCommand, false, nil)
	conn, br := o.attach()
	if line, err := br.ReadString('\n'); err != nil || line != "\n" {
		b.Fatalf("platform stream: first line %q, %v", line, err)
	}
	rate := timedStream(b, tp, "platform stream", conn, br, buf)
	if status, code := o.wait(); status != 200 || code != 0 {
		b.Fatalf("wait: %d %d", status, code)
	}
	return rate
}

// relayTransfer runs throughputCommand with its stdin and stdout on plain
// os.Pipes, relayed to and from a loopback TCP connection by two
// goroutines, and answers its rate in MiB/s as read from the connection.
// The relay reads the pipe and writes the socket with the platform's
// settings (pipe capacity, copy buffer, send buffer), and the command runs
// in a session of its own, so the ratio is what the platform's own
// machinery costs: the attach over its API, the one-off's isolation, its
// bookkeeping per write.
func relayTransfer(b *testing.B, tp *testPlatform, buf []byte) float64 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()

	outR, outW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer outR.Close()
	inR, inW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer inW.Close()
	cmd := exec.Command("/bin/sh", "-c", throughputCommand)
	cmd.Stdin, cmd.Stdout = inR, outW
	// A session of its own, as the platform gives a one-off's processes:
	// the scheduler groups processes by session (autogroup), and under load
	// from other sessions the command streamed twice as fast as a one-off
	// when it ran in the benchmark's session.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	outW.Close()
	inR.Close()

	setPipeSize(outR, outputPipeSize)
	sizeSendBuffer(server)
	relayed := make(chan error, 2)
	go func() {
		rbuf := make([]byte, outBufSize)
		for {
			n, err := outR.Read(rbuf)
			if n > 0 {
				if _, werr := server.Write(rbuf[:n]); werr != nil {
					relayed <- fmt.Errorf("relay out: %w", werr)
					return
				}
			}
			if errors.Is(err, io.EOF) {
				relayed <- server.(*net.TCPConn).CloseWrite()
				return
			}
			if err != nil {
				relayed <- fmt.Errorf("relay out: %w", err)
				return
			}
		}
	}()
	go func() {
		// The go line, relayed to the command's stdin, then EOF.
		_, err := io.Copy(inW, server)
		inW.Close()
		if err != nil {
			err = fmt.Errorf("relay in: %w", err)
		}
		relayed <- err
	}()

	first := make([]byte, 1)
	if _, err := io.ReadFull(client, first); err != nil || first[0] != '\n' {
		b.Fatalf("relay: first line %q, %v", first, err)
	}
	rate := timedStream(b, tp, "relay", client, client, buf)
	client.(*net.TCPConn).CloseWrite()
	for range 2 {
		if err := <-relayed; err != nil {
			b.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("relay: %v", err)
	}
	return rate
}

// timedStream waits for the platform to be at rest, sends the go on stdin,
// reads out to EOF and answers the rate in MiB/s from the go to EOF.
func timedStream(b *testing.B, tp *testPlatform, what string, stdin io.Writer, out io.Reader, buf []byte) float64 {
	waitSpares(b, tp)
	start := time.Now()
	if _, err := stdin.Write([]byte("\n")); err != nil {
		b.Fatalf("%s: go: %v", what, err)
	}
	n, err := drain(out, buf)
	d := time.Since(start)
	if err != nil || n != throughputBytes {
		b.Fatalf("%s: %d bytes of %d, %v", what, n, throughputBytes, err)
	}
	return float64(n) / d.Seconds() / (1 << 20)
}

// drain reads r to EOF with buf. io.Copy to io.Discard would read 8 KiB at
// a time whatever the buffer.
func drain(r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// medianFloat is the median of v (which it sorts).
func medianFloat(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
