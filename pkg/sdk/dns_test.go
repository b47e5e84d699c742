package sdk_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"google.golang.org/grpc"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/sdk"
)

// startDNS runs a DNS server on a free UDP port of 127.0.0.1 that answers A
// queries for name with ips, as a cluster DNS answers for a headless Service
// (one record per ready pod), NOERROR without records for name's other types,
// and NXDOMAIN for every other name (gRPC's _grpc_config TXT look-up included).
// It returns the server's address.
func startDNS(t *testing.T, name string, ips ...net.IP) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			ours := strings.EqualFold(q.Name.String(), name+".")
			rcode := dnsmessage.RCodeSuccess
			if !ours {
				rcode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: rcode})
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if ours && q.Type == dnsmessage.TypeA {
				for _, ip := range ips {
					_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1},
						dnsmessage.AResource{A: [4]byte(ip.To4())})
				}
			}
			msg, err := b.Finish()
			if err != nil {
				continue
			}
			_, _ = pc.WriteTo(msg, from)
		}
	}()
	return pc.LocalAddr().String()
}

// startFakesOnOnePort starts n fake evaluators on 127.0.0.1, 127.0.0.2 ... with
// the same port, as the pods behind a headless Service share theirs.
func startFakesOnOnePort(t *testing.T, n int) (fakes []*fakeEvaluator, ips []net.IP, port int, stops []func()) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		var lis []net.Listener
		first, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		lis = append(lis, first)
		port = first.Addr().(*net.TCPAddr).Port
		for i := 2; i <= n; i++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0."+strconv.Itoa(i), strconv.Itoa(port)))
			if err != nil {
				break
			}
			lis = append(lis, l)
		}
		if len(lis) < n {
			for _, l := range lis {
				_ = l.Close()
			}
			continue // the port was taken on another loopback address: try another
		}
		for _, l := range lis {
			f := &fakeEvaluator{streams: make(chan *fakeStream, 16), counts: map[string]int64{}}
			srv := grpc.NewServer()
			evaluationv1.RegisterEvaluationServiceServer(srv, f)
			go func() { _ = srv.Serve(l) }()
			t.Cleanup(srv.Stop)
			fakes, stops = append(fakes, f), append(stops, srv.Stop)
			ips = append(ips, l.Addr().(*net.TCPAddr).IP)
		}
		return fakes, ips, port, stops
	}
	t.Fatal("no port free on 127.0.0.1-3 after 20 attempts")
	return nil, nil, 0, nil
}

// TestDNSRoundRobinOverAHeadlessServiceName is docs/sdk.md's "Client-side
// balancing" through gRPC's own dns resolver: a name with three A records (a
// headless Service of three pods), Address "dns://<server>/<name>:<port>" and
// LoadBalancing round_robin. Usage reports reach all three evaluators, and when
// the one holding the stream stops, the stream resumes on another from the
// version held.
func TestDNSRoundRobinOverAHeadlessServiceName(t *testing.T) {
	fakes, ips, port, stops := startFakesOnOnePort(t, 3)
	const name = "flagforge-evaluator-headless.flagforge.svc.cluster.test"
	dnsAddr := startDNS(t, name, ips...)
	cfg := fastConfig("dns://" + dnsAddr + "/" + name + ":" + strconv.Itoa(port))
	cfg.LoadBalancing = "round_robin"
	cfg.TrustedKeys, cfg.DisableUsage, cfg.UsageInterval = trustedKeys(t), false, 20*time.Millisecond
	c, err := sdk.New(cfg)
	must(t, err)
	defer func() { _ = c.Close() }()

	holder, s := nextOfAny(t, fakes)
	first := chained(t, nil, 1, true)
	must(t, s.send(snapshotMsg(sign(t, first))))
	must(t, c.WaitReady(t.Context()))
	waitFor(t, "usage reports on every resolved evaluator", func() bool {
		c.Bool("new-ui", nil, false)
		for _, f := range fakes {
			f.mu.Lock()
			n := len(f.counts)
			f.mu.Unlock()
			if n == 0 {
				return false
			}
		}
		return true
	})

	stops[holder]()
	var others []*fakeEvaluator
	for i, f := range fakes {
		if i != holder {
			others = append(others, f)
		}
	}
	_, s2 := nextOfAny(t, others)
	if s2.from != 1 {
		t.Fatalf("the stream resumed from version %d, want 1", s2.from)
	}
}
