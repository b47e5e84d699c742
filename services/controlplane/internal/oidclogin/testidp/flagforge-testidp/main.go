// Command flagforge-testidp runs package testidp, the OIDC provider of the
// console's browser tests (make test-web builds it; never deploy it).
//
//	flagforge-testidp --addr 127.0.0.1:9999 --client flagforge --redirect-uri http://127.0.0.1:8080/auth/callback [--token-ttl 1h]
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/flagforge/flagforge/services/controlplane/internal/oidclogin/testidp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (its URL is the issuer)")
	client := flag.String("client", "flagforge", "the registered client id")
	redirect := flag.String("redirect-uri", "", "the client's registered redirect URI")
	ttl := flag.Duration("token-ttl", time.Hour, "ID token lifetime")
	flag.Parse()
	if *redirect == "" {
		fmt.Fprintln(os.Stderr, "--redirect-uri is required")
		os.Exit(2)
	}
	idp, err := testidp.New(testidp.Config{Issuer: "http://" + *addr, TokenTTL: *ttl,
		Clients: []testidp.Client{{ID: *client, RedirectURIs: []string{*redirect}}}})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *addr, Handler: idp.Handler(), ReadHeaderTimeout: 5 * time.Second}
	log.Printf("test identity provider at http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}
