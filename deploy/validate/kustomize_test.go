package validate

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// placeholders are the files an operator (or secrets.sh) creates before building
// an overlay and that are never committed; the test supplies stand-ins.
var placeholders = map[string]string{
	"kubernetes/overlays/dev/secrets/controlplane.env": "database-url=postgres://u:p@postgresql:5432/flagforge\nmigrate-database-url=postgres://u:p@postgresql:5432/flagforge\n" +
		"sync-token=t\nbootstrap-token=ffat_0123456789012345678901234567890123456789\ns3-access-key=\ns3-secret-key=\n",
	"kubernetes/overlays/dev/secrets/evaluator.env":       "sync-token=t\n",
	"kubernetes/overlays/dev/secrets/backup.env":          "database-url=postgres://u:p@postgresql:5432/flagforge\n",
	"kubernetes/overlays/dev/secrets/postgresql.env":      "password=p\n",
	"kubernetes/overlays/dev/secrets/signing-key.pem":     "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
	"kubernetes/overlays/dev/secrets/signing-key.pub.pem": "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
	"kubernetes/overlays/prod/signing-key.pub.pem":        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
}

// built is the output of one kustomization, decoded into typed objects.
type built struct {
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	policies     []*networkingv1.NetworkPolicy
	cronJobs     []*batchv1.CronJob
	pvcs         map[string]*corev1.PersistentVolumeClaim
	accounts     map[string]*corev1.ServiceAccount
	namespaces   []string
	rules        []*prometheusRule
	everyObjects int
}

// build runs kustomize (the Go API, as `kubectl kustomize` does) on dir,
// relative to deploy/, over an in-memory copy of deploy/kubernetes plus the
// placeholder files, and decodes every resource strictly.
func build(t *testing.T, dir string) *built {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	root := filepath.Join(deployDir, "kubernetes")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(deployDir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return fs.WriteFile("/deploy/"+filepath.ToSlash(rel), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range placeholders {
		if err := fs.WriteFile("/deploy/"+p, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(fs, "/deploy/"+dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := splitDocuments(out)
	if err != nil {
		t.Fatal(err)
	}
	b := &built{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		pvcs: map[string]*corev1.PersistentVolumeClaim{}, accounts: map[string]*corev1.ServiceAccount{}}
	for _, doc := range docs {
		obj, err := decodeStrict(doc)
		if err != nil {
			t.Fatalf("kustomize build %s produced an invalid object: %v\n%s", dir, err, doc)
		}
		b.everyObjects++
		switch o := obj.(type) {
		case *appsv1.Deployment:
			b.deployments = append(b.deployments, o)
		case *corev1.Service:
			b.services = append(b.services, o)
		case *corev1.ConfigMap:
			b.configMaps[o.Name] = o
		case *corev1.Secret:
			b.secrets[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			b.hpas = append(b.hpas, o)
		case *policyv1.PodDisruptionBudget:
			b.pdbs = append(b.pdbs, o)
		case *networkingv1.NetworkPolicy:
			b.policies = append(b.policies, o)
		case *batchv1.CronJob:
			b.cronJobs = append(b.cronJobs, o)
		case *corev1.PersistentVolumeClaim:
			b.pvcs[o.Name] = o
		case *corev1.ServiceAccount:
			b.accounts[o.Name] = o
		case *corev1.Namespace:
			b.namespaces = append(b.namespaces, o.Name)
		case *prometheusRule:
			b.rules = append(b.rules, o)
		}
	}
	return b
}

func (b *built) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	for _, d := range b.deployments {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no Deployment %s", name)
	return nil
}

// podSpecs are every pod template of the build, by owner.
func (b *built) podSpecs() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, d := range b.deployments {
		out["Deployment/"+d.Name] = &d.Spec.Template
	}
	for _, c := range b.cronJobs {
		out["CronJob/"+c.Name] = &c.Spec.JobTemplate.Spec.Template
	}
	return out
}

func TestOverlaysBuildAndObeyTheDeploymentRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dir       string
		namespace string
		// external are Secrets (and, for the base, ConfigMaps) the build expects
		// to exist in the cluster or to come from an overlay.
		external []string
	}{
		{dir: "kubernetes/base", external: []string{"flagforge-controlplane", "flagforge-evaluator", "flagforge-backup", "flagforge-trusted-keys"}},
		{dir: "kubernetes/overlays/dev", namespace: "flagforge-dev"},
		{dir: "kubernetes/overlays/prod", namespace: "flagforge", external: []string{"flagforge-controlplane", "flagforge-evaluator", "flagforge-backup",
			"flagforge-controlplane-tls", "flagforge-evaluator-tls"}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			b := build(t, tc.dir)
			checkPods(t, b, tc.external)
			checkFlagForgeWorkloads(t, b)
			checkSelectors(t, b)
			checkNetworkPolicies(t, b)
			checkTLSWiring(t, b)
			if cm, ok := b.configMaps["flagforge-controlplane"]; ok {
				checkS3Endpoint(t, tc.dir, cm.Data["FLAGFORGE_SNAPSHOT_S3_ENDPOINT"])
			}
			if tc.namespace != "" && !slices.Contains(b.namespaces, tc.namespace) {
				t.Errorf("no Namespace %s in %v", tc.namespace, b.namespaces)
			}
			if tc.dir == "kubernetes/base" {
				if _, ok := b.configMaps["flagforge-grafana-dashboard"]; !ok {
					t.Error("the Grafana dashboard ConfigMap is missing")
				}
				if len(b.rules) != 1 {
					t.Errorf("%d PrometheusRules, want 1", len(b.rules))
				}
			}
			if tc.dir == "kubernetes/overlays/prod" {
				checkProdTLS(t, b)
				for _, d := range b.deployments {
					for _, c := range d.Spec.Template.Spec.Containers {
						if strings.HasSuffix(c.Image, ":dev") {
							t.Errorf("prod Deployment %s runs the dev image %s", d.Name, c.Image)
						}
					}
				}
			}
		})
	}
}

// checkPods: every pod runs as non-root with a read-only root filesystem, no
// privilege escalation, no capabilities, memory limits, and references only
// ConfigMaps, Secrets, PVCs and service accounts that exist (or are external).
func checkPods(t *testing.T, b *built, external []string) {
	t.Helper()
	for owner, tpl := range b.podSpecs() {
		spec := &tpl.Spec
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil {
			t.Errorf("%s: the pod must set runAsNonRoot and a seccomp profile", owner)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false (no workload calls the API server)", owner)
		}
		if sa := spec.ServiceAccountName; sa != "" && b.accounts[sa] == nil {
			t.Errorf("%s: service account %s does not exist", owner, sa)
		}
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			where := owner + " container " + c.Name
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: needs readOnlyRootFilesystem, no privilege escalation and capabilities drop ALL", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: needs CPU and memory requests and a memory limit", where)
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil && b.configMaps[ef.ConfigMapRef.Name] == nil {
					t.Errorf("%s: envFrom ConfigMap %s does not exist", where, ef.ConfigMapRef.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				s := b.secrets[ref.Name]
				switch {
				case s == nil && !slices.Contains(external, ref.Name):
					t.Errorf("%s: env %s reads Secret %s, which is neither built nor external", where, e.Name, ref.Name)
				case s != nil && s.Data[ref.Key] == nil && s.StringData[ref.Key] == "" && (ref.Optional == nil || !*ref.Optional):
					t.Errorf("%s: env %s reads key %s, missing from Secret %s", where, e.Name, ref.Key, ref.Name)
				}
			}
		}
		for _, v := range spec.Volumes {
			switch {
			case v.ConfigMap != nil && b.configMaps[v.ConfigMap.Name] == nil && !slices.Contains(external, v.ConfigMap.Name):
				t.Errorf("%s: volume %s: ConfigMap %s does not exist", owner, v.Name, v.ConfigMap.Name)
			case v.Secret != nil && b.secrets[v.Secret.SecretName] == nil && !slices.Contains(external, v.Secret.SecretName):
				t.Errorf("%s: volume %s: Secret %s does not exist", owner, v.Name, v.Secret.SecretName)
			case v.PersistentVolumeClaim != nil && b.pvcs[v.PersistentVolumeClaim.ClaimName] == nil:
				t.Errorf("%s: volume %s: PVC %s does not exist", owner, v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
}

// envValue is a container's literal environment value, else the one from its
// envFrom ConfigMaps, else def.
func envValue(b *built, c *corev1.Container, name, def string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value
		}
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && b.configMaps[ef.ConfigMapRef.Name] != nil {
			if v, ok := b.configMaps[ef.ConfigMapRef.Name].Data[name]; ok {
				return v
			}
		}
	}
	return def
}

// checkFlagForgeWorkloads: the probes match the services' endpoints and ports,
// the grace period covers preStop plus the drain, and the autoscaler and the
// disruption budgets cover the Deployments.
func checkFlagForgeWorkloads(t *testing.T, b *built) {
	t.Helper()
	for _, w := range []struct {
		name, httpAddr string
		// drains are the shutdown timeouts run one after another on SIGTERM.
		drains map[string]string
	}{
		{"flagforge-controlplane", "0.0.0.0:8080", map[string]string{"FLAGFORGE_HTTP_SHUTDOWN_TIMEOUT": "15s", "FLAGFORGE_GRPC_SHUTDOWN_TIMEOUT": "15s"}},
		{"flagforge-evaluator", "0.0.0.0:8081", map[string]string{"FLAGFORGE_SHUTDOWN_TIMEOUT": "15s"}},
	} {
		d := b.deployment(t, w.name)
		c := &d.Spec.Template.Spec.Containers[0]
		if got := envValue(b, c, "FLAGFORGE_HTTP_ADDR", ""); got != w.httpAddr {
			t.Errorf("%s: FLAGFORGE_HTTP_ADDR = %q, want %q (probes and the Service use its port)", w.name, got, w.httpAddr)
		}
		port := w.httpAddr[strings.LastIndex(w.httpAddr, ":")+1:]
		var httpPort string
		for _, p := range c.Ports {
			if p.Name == "http" {
				httpPort = fmt.Sprint(p.ContainerPort)
			}
		}
		if httpPort != port {
			t.Errorf("%s: container port http = %s, the process listens on %s", w.name, httpPort, port)
		}
		for probe, want := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
			if want == nil || want.HTTPGet == nil || want.HTTPGet.Path != probe || want.HTTPGet.Port.String() != "http" {
				t.Errorf("%s: probe for %s missing or wrong: %+v", w.name, probe, want)
			}
		}
		if c.StartupProbe == nil {
			t.Errorf("%s: no startup probe", w.name)
		}
		var drain time.Duration
		for name, def := range w.drains {
			v, err := time.ParseDuration(envValue(b, c, name, def))
			if err != nil {
				t.Fatalf("%s: %s: %v", w.name, name, err)
			}
			drain += v
		}
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			t.Fatalf("%s: no preStop sleep", w.name)
		}
		need := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second + drain
		grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
		if grace <= need {
			t.Errorf("%s: terminationGracePeriodSeconds %s does not exceed preStop + drain %s: the kubelet would kill mid-drain", w.name, grace, need)
		}
		if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
			t.Errorf("%s: no topology spread", w.name)
		}
		var pdb bool
		for _, p := range b.pdbs {
			sel, err := metav1LabelSelector(p.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			pdb = pdb || sel.Matches(labels.Set(d.Spec.Template.Labels))
		}
		if !pdb {
			t.Errorf("%s: no PodDisruptionBudget selects its pods", w.name)
		}
	}
	var hpa bool
	for _, h := range b.hpas {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == "flagforge-evaluator" {
			hpa = true
			b.deployment(t, h.Spec.ScaleTargetRef.Name)
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
				t.Errorf("HPA %s: bad replica bounds", h.Name)
			}
			ev := b.deployment(t, "flagforge-evaluator")
			if ev.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().IsZero() {
				t.Error("the evaluator HPA scales on CPU utilization but the container requests no CPU")
			}
		}
	}
	if !hpa {
		t.Error("no HorizontalPodAutoscaler for flagforge-evaluator")
	}
	var headless []string
	for _, s := range b.services {
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = append(headless, s.Name)
		}
	}
	for _, want := range []string{"flagforge-evaluator-headless", "flagforge-controlplane-headless"} {
		if !slices.Contains(headless, want) {
			t.Errorf("no headless Service %s (per-call gRPC balancing); headless: %v", want, headless)
		}
	}
}

// checkSelectors: every Service selects the pods of some Deployment, on ports
// those pods name.
func checkSelectors(t *testing.T, b *built) {
	t.Helper()
	for _, s := range b.services {
		var matched *appsv1.Deployment
		for _, d := range b.deployments {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				matched = d
			}
		}
		if matched == nil {
			t.Errorf("Service %s selects no Deployment's pods", s.Name)
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal == "" {
				continue
			}
			var found bool
			for _, c := range matched.Spec.Template.Spec.Containers {
				for _, cp := range c.Ports {
					found = found || cp.Name == p.TargetPort.StrVal
				}
			}
			if !found {
				t.Errorf("Service %s port %s targets %q, which Deployment %s does not name", s.Name, p.Name, p.TargetPort.StrVal, matched.Name)
			}
		}
	}
}

// checkNetworkPolicies: FlagForge pods deny by default; evaluators may reach
// only Redis and the control plane's gRPC port (besides DNS); only the control
// plane and the backup job reach PostgreSQL.
func checkNetworkPolicies(t *testing.T, b *built) {
	t.Helper()
	ev := b.deployment(t, "flagforge-evaluator").Spec.Template.Labels
	var denyAll bool
	type dest struct {
		pod  string
		port string
	}
	var evaluatorEgress []dest
	var postgresFrom []string
	for _, p := range b.policies {
		sel, err := metav1LabelSelector(&p.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(labels.Set(ev)) {
			if p.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] == "postgresql" {
				for _, in := range p.Spec.Ingress {
					if len(in.From) == 0 {
						t.Errorf("NetworkPolicy %s lets anyone reach PostgreSQL", p.Name)
					}
					for _, f := range in.From {
						if f.PodSelector == nil || f.NamespaceSelector != nil || f.IPBlock != nil {
							t.Errorf("NetworkPolicy %s admits a non-pod peer to PostgreSQL", p.Name)
							continue
						}
						postgresFrom = append(postgresFrom, f.PodSelector.MatchLabels["app.kubernetes.io/name"])
					}
				}
			}
			continue
		}
		if len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			denyAll = true
		}
		for _, e := range p.Spec.Egress {
			if len(e.To) == 0 {
				t.Errorf("NetworkPolicy %s lets evaluators reach any address", p.Name)
			}
			for _, to := range e.To {
				name := ""
				if to.PodSelector != nil {
					name = to.PodSelector.MatchLabels["app.kubernetes.io/name"]
					if name == "" {
						name = "k8s-app=" + to.PodSelector.MatchLabels["k8s-app"]
					}
				}
				if to.IPBlock != nil {
					name = "ipBlock " + to.IPBlock.CIDR
				}
				for _, port := range e.Ports {
					evaluatorEgress = append(evaluatorEgress, dest{name, port.Port.String()})
				}
			}
		}
	}
	if !denyAll {
		t.Error("no default-deny NetworkPolicy covers the evaluators")
	}
	allowed := []dest{{"redis", "6379"}, {"flagforge-controlplane", "9090"}, {"k8s-app=kube-dns", "53"}}
	for _, d := range evaluatorEgress {
		if !slices.Contains(allowed, d) {
			t.Errorf("evaluators may reach %s:%s; allowed are only %v", d.pod, d.port, allowed)
		}
	}
	slices.Sort(postgresFrom)
	if !slices.Equal(postgresFrom, []string{"flagforge-backup", "flagforge-controlplane"}) {
		t.Errorf("PostgreSQL admits %v, want only the control plane and the backup job", postgresFrom)
	}
}

// tlsSecretKeys are the keys of a kubernetes.io/tls Secret as cert-manager writes it.
var tlsSecretKeys = []string{"tls.crt", "tls.key", "ca.crt"}

// checkTLSWiring: every FLAGFORGE_*TLS*_FILE a container is given lies under one of
// its volume mounts, whose volume exists in the pod (and, for a Secret without an
// items list, is one of the TLS Secret's keys); a container serving TLS is probed
// over HTTPS.
func checkTLSWiring(t *testing.T, b *built) {
	t.Helper()
	for owner, tpl := range b.podSpecs() {
		spec := &tpl.Spec
		volumes := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			volumes[v.Name] = v
		}
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			where := owner + " container " + c.Name
			for _, e := range c.Env {
				if !strings.HasPrefix(e.Name, "FLAGFORGE_") || !strings.Contains(e.Name, "TLS") || !strings.HasSuffix(e.Name, "_FILE") {
					continue
				}
				var mount *corev1.VolumeMount
				for i, m := range c.VolumeMounts {
					if strings.HasPrefix(e.Value, strings.TrimSuffix(m.MountPath, "/")+"/") {
						mount = &c.VolumeMounts[i]
					}
				}
				if mount == nil {
					t.Errorf("%s: %s=%s is under none of the container's volume mounts", where, e.Name, e.Value)
					continue
				}
				v, ok := volumes[mount.Name]
				if !ok {
					t.Errorf("%s: %s is on mount %s, whose volume the pod does not have", where, e.Name, mount.Name)
					continue
				}
				file := strings.TrimPrefix(e.Value, strings.TrimSuffix(mount.MountPath, "/")+"/")
				if v.Secret != nil && len(v.Secret.Items) == 0 && !slices.Contains(tlsSecretKeys, file) {
					t.Errorf("%s: %s names %s, not a key of TLS Secret %s (%v)", where, e.Name, file, v.Secret.SecretName, tlsSecretKeys)
				}
			}
			if envValue(b, &c, "FLAGFORGE_TLS_CERT_FILE", "") == "" {
				continue
			}
			for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if p != nil && p.HTTPGet != nil && p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
					t.Errorf("%s serves TLS but its %s probe uses %q", where, name, p.HTTPGet.Scheme)
				}
			}
		}
	}
}

// checkProdTLS: in prod both services serve TLS, the control plane requires
// client certificates on the sync service, and evaluators present one, checking
// the control plane's certificate against a CA under the name it is reached by.
func checkProdTLS(t *testing.T, b *built) {
	t.Helper()
	cp := b.deployment(t, "flagforge-controlplane").Spec.Template.Spec.Containers[0]
	ev := b.deployment(t, "flagforge-evaluator").Spec.Template.Spec.Containers[0]
	for _, need := range []struct {
		c    *corev1.Container
		vars []string
	}{
		{&cp, []string{"FLAGFORGE_TLS_CERT_FILE", "FLAGFORGE_TLS_KEY_FILE", "FLAGFORGE_TLS_CLIENT_CA_FILE"}},
		{&ev, []string{"FLAGFORGE_TLS_CERT_FILE", "FLAGFORGE_TLS_KEY_FILE", "FLAGFORGE_SYNC_TLS_CA_FILE",
			"FLAGFORGE_SYNC_TLS_CERT_FILE", "FLAGFORGE_SYNC_TLS_KEY_FILE", "FLAGFORGE_SYNC_TLS_SERVER_NAME"}},
	} {
		for _, v := range need.vars {
			if envValue(b, need.c, v, "") == "" {
				t.Errorf("prod container %s: %s is not set (TLS / mTLS)", need.c.Name, v)
			}
		}
	}
	usage := envValue(b, &ev, "FLAGFORGE_USAGE_ADDR", "")
	host, _, _ := strings.Cut(usage, ":")
	if name := envValue(b, &ev, "FLAGFORGE_SYNC_TLS_SERVER_NAME", ""); name != host {
		t.Errorf("prod evaluator verifies the control plane as %q but reaches it at %q", name, usage)
	}
}
