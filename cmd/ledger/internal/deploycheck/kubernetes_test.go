package deploycheck

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/config"
	"github.com/ledger-secrets/ledger/cmd/ledger/internal/k8sreg"
	"github.com/ledger-secrets/ledger/commands"
)

// readinessPath is the probe of the issue (Vault's Helm chart's) plus perfstandbyok: Ledger's
// standbys are performance standbys, which Vault answers 473 unless perfstandbyok is set.
const readinessPath = "/v1/sys/health?standbyok=true&perfstandbyok=true&sealedcode=204&uninitcode=204"

// deployDir is the repository's deploy/ directory.
func deployDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "deploy")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// bundle is the objects of one way to deploy, decoded into the API's own types.
type bundle struct {
	namespaces      []*corev1.Namespace
	serviceAccounts []*corev1.ServiceAccount
	configMaps      []*corev1.ConfigMap
	services        []*corev1.Service
	statefulSets    []*appsv1.StatefulSet
	roles           []*rbacv1.Role
	roleBindings    []*rbacv1.RoleBinding
	pdbs            []*policyv1.PodDisruptionBudget
	netpols         []*networkingv1.NetworkPolicy
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocs splits a multi-document YAML file, dropping documents that hold only comments.
func splitDocs(src []byte) [][]byte {
	var out [][]byte
	for _, d := range docSeparator.Split(string(src), -1) {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			out = append(out, []byte(d))
		}
	}
	return out
}

func strict[T any](doc []byte, list *[]*T) error {
	v := new(T)
	// UnmarshalStrict fails on a field the type does not have and on a key given twice.
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// add decodes every document of src strictly into the type its apiVersion and kind name.
func (b *bundle) add(name string, src []byte) error {
	var errs []error
	for i, doc := range splitDocs(src) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			errs = append(errs, fmt.Errorf("%s document %d: %w", name, i+1, err))
			continue
		}
		var err error
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			err = strict(doc, &b.namespaces)
		case "v1 ServiceAccount":
			err = strict(doc, &b.serviceAccounts)
		case "v1 ConfigMap":
			err = strict(doc, &b.configMaps)
		case "v1 Service":
			err = strict(doc, &b.services)
		case "apps/v1 StatefulSet":
			err = strict(doc, &b.statefulSets)
		case "rbac.authorization.k8s.io/v1 Role":
			err = strict(doc, &b.roles)
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			err = strict(doc, &b.roleBindings)
		case "policy/v1 PodDisruptionBudget":
			err = strict(doc, &b.pdbs)
		case "networking.k8s.io/v1 NetworkPolicy":
			err = strict(doc, &b.netpols)
		default:
			err = fmt.Errorf("apiVersion %q kind %q is not a kind these manifests use", tm.APIVersion, tm.Kind)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s document %d (%s): %w", name, i+1, tm.Kind, err))
		}
	}
	return errors.Join(errs...)
}

func loadBundle(t *testing.T, files ...string) *bundle {
	t.Helper()
	b := &bundle{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.add(filepath.Base(f), src); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// problems checks that the objects fit together as a three-node Ledger with service
// registration; it returns what does not, so that a broken copy can be shown to fail.
func (b *bundle) problems() []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if len(b.statefulSets) != 1 {
		return []string{fmt.Sprintf("%d StatefulSets, want 1", len(b.statefulSets))}
	}
	sts := b.statefulSets[0]
	ns := sts.Namespace
	tmpl := sts.Spec.Template
	podLabels := labels.Set(tmpl.Labels)
	spec := tmpl.Spec

	// Namespaces: one for everything.
	meta := []metav1.Object{}
	for _, o := range b.serviceAccounts {
		meta = append(meta, o)
	}
	for _, o := range b.configMaps {
		meta = append(meta, o)
	}
	for _, o := range b.services {
		meta = append(meta, o)
	}
	for _, o := range b.roles {
		meta = append(meta, o)
	}
	for _, o := range b.roleBindings {
		meta = append(meta, o)
	}
	for _, o := range b.pdbs {
		meta = append(meta, o)
	}
	for _, o := range b.netpols {
		meta = append(meta, o)
	}
	for _, o := range meta {
		if o.GetNamespace() != ns {
			bad("%s is in namespace %q, the StatefulSet in %q", o.GetName(), o.GetNamespace(), ns)
		}
	}
	for _, n := range b.namespaces {
		if n.Name != ns {
			bad("Namespace %q is not the StatefulSet's %q", n.Name, ns)
		}
	}

	// The StatefulSet.
	if sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector); err != nil || sel.Empty() || !sel.Matches(podLabels) {
		bad("StatefulSet selector %v does not match its pod labels %v (%v)", sts.Spec.Selector, tmpl.Labels, err)
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		bad("StatefulSet replicas %v, want 3", sts.Spec.Replicas)
	}
	replicas := 3
	if sts.Spec.Replicas != nil {
		replicas = int(*sts.Spec.Replicas)
	}

	// Services.
	svcByName := map[string]*corev1.Service{}
	for _, s := range b.services {
		svcByName[s.Name] = s
	}
	if h := svcByName[sts.Spec.ServiceName]; h == nil {
		bad("StatefulSet serviceName %q names no Service", sts.Spec.ServiceName)
	} else if h.Spec.ClusterIP != corev1.ClusterIPNone || !h.Spec.PublishNotReadyAddresses {
		bad("Service %s must be headless (clusterIP: None) and publish not-ready addresses: sealed pods must find each other", h.Name)
	}
	active := k8sreg.State{Initialized: true, Active: true}.Labels(commands.Version)
	standby := k8sreg.State{Initialized: true, PerfStandby: true}.Labels(commands.Version)
	var activeServices, clientServices int
	var containerPorts []string
	var ctr *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == "ledger" {
			ctr = &spec.Containers[i]
		}
	}
	if ctr == nil {
		return append(p, "the pod has no container named ledger")
	}
	clusterPort := 0
	for _, cp := range ctr.Ports {
		containerPorts = append(containerPorts, cp.Name)
		if cp.Name == "cluster" {
			clusterPort = int(cp.ContainerPort)
		}
	}
	for _, s := range b.services {
		rest := labels.Set{}
		selectsActive := false
		for k, v := range s.Spec.Selector {
			if _, set := active[k]; set {
				selectsActive = true
				if active[k] != v || standby[k] == v {
					bad("Service %s selects %s=%q, which the active node does not set and standbys do not clear (active %q, standby %q)", s.Name, k, v, active[k], standby[k])
				}
				continue
			}
			rest[k] = v
		}
		if len(rest) == 0 || !labels.SelectorFromSet(rest).Matches(podLabels) {
			bad("Service %s selector %v does not select the StatefulSet's pods %v", s.Name, s.Spec.Selector, tmpl.Labels)
		}
		switch {
		case selectsActive:
			activeServices++
		case s.Spec.ClusterIP != corev1.ClusterIPNone:
			clientServices++
		}
		for _, sp := range s.Spec.Ports {
			if sp.TargetPort.StrVal == "" || !slices.Contains(containerPorts, sp.TargetPort.StrVal) {
				bad("Service %s port %s targets %q, not a named container port (%v)", s.Name, sp.Name, sp.TargetPort.String(), containerPorts)
			}
		}
	}
	if activeServices != 1 || clientServices != 1 {
		bad("want one Service following the active pod and one for every node; have %d and %d", activeServices, clientServices)
	}

	// RBAC: the pod's service account may get and patch pods.
	sa := spec.ServiceAccountName
	if !slices.ContainsFunc(b.serviceAccounts, func(s *corev1.ServiceAccount) bool { return s.Name == sa }) {
		bad("serviceAccountName %q names no ServiceAccount", sa)
	}
	if spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken {
		bad("the service account token is not mounted: service registration needs it")
	}
	allowed := map[string]bool{}
	for _, rb := range b.roleBindings {
		if !slices.ContainsFunc(rb.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Name == sa && s.Namespace == ns
		}) || rb.RoleRef.Kind != "Role" || rb.RoleRef.APIGroup != rbacv1.GroupName {
			continue
		}
		for _, r := range b.roles {
			if r.Name != rb.RoleRef.Name {
				continue
			}
			for _, rule := range r.Rules {
				if slices.Contains(rule.APIGroups, "") && slices.Contains(rule.Resources, "pods") {
					for _, v := range rule.Verbs {
						allowed[v] = true
					}
				}
			}
		}
	}
	if !allowed["get"] || !allowed["patch"] {
		bad("no Role bound to ServiceAccount %s allows get and patch on pods (allowed: %v)", sa, allowed)
	}

	// The probe.
	if rp := ctr.ReadinessProbe; rp == nil || rp.HTTPGet == nil {
		bad("the ledger container has no HTTP readiness probe")
	} else {
		if rp.HTTPGet.Path != readinessPath {
			bad("readiness probe path %q, want %q", rp.HTTPGet.Path, readinessPath)
		}
		if u, err := url.Parse(rp.HTTPGet.Path); err != nil || u.Query().Get("sealedcode") != "204" || u.Query().Get("standbyok") != "true" {
			bad("readiness probe %q does not parse as a sys/health query", rp.HTTPGet.Path)
		}
		if rp.HTTPGet.Scheme != corev1.URISchemeHTTPS || !slices.Contains(containerPorts, rp.HTTPGet.Port.StrVal) {
			bad("readiness probe must use HTTPS on the named api port, got %s %s", rp.HTTPGet.Scheme, rp.HTTPGet.Port.String())
		}
	}

	// Security context: non-root, read-only root, no capabilities, no escalation.
	psc, sc := spec.SecurityContext, ctr.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0:
		bad("pod securityContext must set runAsNonRoot and a non-zero runAsUser")
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		bad("pod securityContext must use the RuntimeDefault seccomp profile")
	}
	switch {
	case sc == nil:
		bad("the ledger container has no securityContext")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		bad("container securityContext must set readOnlyRootFilesystem: true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		bad("container securityContext must set allowPrivilegeEscalation: false")
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
		bad("container securityContext must drop ALL capabilities and add none")
	case sc.Privileged != nil && *sc.Privileged:
		bad("container must not be privileged")
	}

	// Anti-affinity: one pod per node.
	spread := false
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
			if err == nil && term.TopologyKey == corev1.LabelHostname && sel.Matches(podLabels) {
				spread = true
			}
		}
	}
	if !spread {
		bad("no required pod anti-affinity on %s that selects the pods", corev1.LabelHostname)
	}

	// The downward API names the pod for service registration.
	env := map[string]corev1.EnvVar{}
	for _, e := range ctr.Env {
		env[e.Name] = e
	}
	fieldOf := func(name string) string {
		e := env[name]
		if m := regexp.MustCompile(`^\$\((\w+)\)$`).FindStringSubmatch(e.Value); m != nil {
			e = env[m[1]]
		}
		if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil {
			return ""
		}
		return e.ValueFrom.FieldRef.FieldPath
	}
	if fieldOf("LEDGER_K8S_POD_NAME") != "metadata.name" || fieldOf("LEDGER_K8S_NAMESPACE") != "metadata.namespace" {
		bad("LEDGER_K8S_POD_NAME and LEDGER_K8S_NAMESPACE must come from the downward API's metadata.name and metadata.namespace")
	}

	// Volumes: every mount has a volume; only the data claim and scratch space are writable.
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	claims := map[string]bool{}
	for _, c := range sts.Spec.VolumeClaimTemplates {
		claims[c.Name] = true
	}
	mounts := map[string]corev1.VolumeMount{} // by path
	for _, m := range ctr.VolumeMounts {
		mounts[m.MountPath] = m
		v, isVol := vols[m.Name]
		switch {
		case !isVol && !claims[m.Name]:
			bad("volumeMount %s names no volume", m.Name)
		case !m.ReadOnly && isVol && v.EmptyDir == nil:
			bad("volumeMount %s at %s is writable but not scratch space or the data claim", m.Name, m.MountPath)
		}
	}

	// The config: one file per pod, chosen by the pod's name.
	var cfgDir string
	for _, a := range ctr.Args {
		if f, ok := strings.CutPrefix(a, "-config="); ok {
			if path.Base(f) != "$(POD_NAME).hcl" || fieldOf("POD_NAME") != "metadata.name" {
				bad("-config=%s should name the pod's own file, $(POD_NAME).hcl with POD_NAME from metadata.name", f)
			}
			cfgDir = path.Dir(f)
		}
	}
	m, ok := mounts[cfgDir]
	if !ok || vols[m.Name].ConfigMap == nil {
		return append(p, fmt.Sprintf("the config directory %q is not a mounted ConfigMap", cfgDir))
	}
	var cm *corev1.ConfigMap
	for _, c := range b.configMaps {
		if c.Name == vols[m.Name].ConfigMap.Name {
			cm = c
		}
	}
	if cm == nil {
		return append(p, fmt.Sprintf("ConfigMap %q is mounted but not shipped", vols[m.Name].ConfigMap.Name))
	}
	for i := range replicas {
		pod := fmt.Sprintf("%s-%d", sts.Name, i)
		src, ok := cm.Data[pod+".hcl"]
		if !ok {
			bad("ConfigMap %s has no %s.hcl for pod %s", cm.Name, pod, pod)
			continue
		}
		cfg, probs := loadHCL([]byte(src), "configmap "+cm.Name+"/"+pod+".hcl")
		p = append(p, probs...)
		if cfg == nil {
			continue
		}
		if cfg.ServiceRegistration == nil || cfg.ServiceRegistration.Type != "kubernetes" {
			bad("%s.hcl has no service_registration \"kubernetes\" block", pod)
		}
		wantHost := fmt.Sprintf("%s.%s.%s.svc.cluster.local:8200", pod, sts.Spec.ServiceName, ns)
		if u, err := url.Parse(cfg.APIAddr); err != nil || u.Scheme != "https" || u.Host != wantHost {
			bad("%s.hcl api_addr %q, want https://%s, the pod's stable name", pod, cfg.APIAddr, wantHost)
		}
		for _, l := range cfg.Listeners {
			if l.TLSDisable {
				bad("%s.hcl listener %s has TLS disabled", pod, l.Address)
				continue
			}
			for _, f := range []string{l.TLSCertFile, l.TLSKeyFile} {
				if tm, ok := mounts[path.Dir(f)]; !ok || vols[tm.Name].Secret == nil || !tm.ReadOnly {
					bad("%s.hcl TLS file %s is not in a read-only Secret mount", pod, f)
				}
			}
		}
		if cfg.NodeID != pod {
			bad("%s.hcl node_id %q, want the pod's name", pod, cfg.NodeID)
		}
		if cfg.Storage.Replicas != replicas {
			bad("%s.hcl replicas = %d, want one copy per pod (%d)", pod, cfg.Storage.Replicas, replicas)
		}
		st := cfg.Storage
		if st.Path != "" {
			dm, ok := mounts[path.Dir(st.Path)]
			if !ok || !claims[dm.Name] {
				bad("%s.hcl storage path %s is not on the StatefulSet's volume claim", pod, st.Path)
			}
			var routes []string
			for j := range replicas {
				routes = append(routes, fmt.Sprintf("nats://%s-%d.%s.%s.svc.cluster.local:%d", sts.Name, j, sts.Spec.ServiceName, ns, clusterPort))
			}
			switch {
			case st.Cluster == nil:
				bad("%s.hcl has no cluster block: the pods would not form one JetStream cluster", pod)
			case !strings.HasSuffix(st.Cluster.Listen, fmt.Sprintf(":%d", clusterPort)) || clusterPort == 0:
				bad("%s.hcl cluster listen %s is not the container's cluster port %d", pod, st.Cluster.Listen, clusterPort)
			case !slices.Equal(st.Cluster.Routes, routes):
				bad("%s.hcl routes %v, want every pod's stable name %v", pod, st.Cluster.Routes, routes)
			}
		}
		for _, f := range []string{st.NKeySeedFile, st.CredsFile, st.TLSCAFile} {
			if f == "" {
				continue
			}
			if sm, ok := mounts[path.Dir(f)]; !ok || vols[sm.Name].Secret == nil || !sm.ReadOnly {
				bad("%s.hcl NATS credential or CA file %s is not in a read-only Secret mount", pod, f)
			}
		}
	}

	// Disruptions: never two of three at once.
	if len(b.pdbs) != 1 {
		bad("%d PodDisruptionBudgets, want 1", len(b.pdbs))
	}
	for _, pdb := range b.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(podLabels) {
			bad("PodDisruptionBudget %s does not select the pods", pdb.Name)
		}
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			bad("PodDisruptionBudget %s must allow at most one pod down (maxUnavailable: 1)", pdb.Name)
		}
	}
	for _, np := range b.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(podLabels) {
			bad("NetworkPolicy %s does not select the pods", np.Name)
		}
		for _, rule := range np.Spec.Ingress {
			for _, port := range rule.Ports {
				if port.Port != nil && port.Port.IntValue() == 6222 {
					for _, from := range rule.From {
						s, err := metav1.LabelSelectorAsSelector(from.PodSelector)
						if from.PodSelector == nil || err != nil || !s.Matches(podLabels) || from.IPBlock != nil || from.NamespaceSelector != nil {
							bad("NetworkPolicy %s opens the cluster port to more than the Ledger pods", np.Name)
						}
					}
					if len(rule.From) == 0 {
						bad("NetworkPolicy %s opens the cluster port to everyone", np.Name)
					}
				}
			}
		}
	}
	return p
}

func TestKubernetesEmbeddedCluster(t *testing.T) {
	dir := filepath.Join(deployDir(t), "kubernetes")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no manifests in deploy/kubernetes")
	}
	b := loadBundle(t, files...)
	if len(b.netpols) == 0 || len(b.namespaces) == 0 {
		t.Error("the embedded-cluster manifests should ship a Namespace and a NetworkPolicy for the cluster port")
	}
	for _, p := range b.problems() {
		t.Error(p)
	}
}

func TestKubernetesExternalNATS(t *testing.T) {
	dir := filepath.Join(deployDir(t), "kubernetes", "external-nats")
	b := loadBundle(t, filepath.Join(dir, "ledger.yaml"))
	for _, p := range b.problems() {
		t.Error(p)
	}

	// The Helm values: YAML, a three-server JetStream cluster that fsyncs every write.
	src, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Enabled   bool `json:"enabled"`
				FileStore struct {
					Enabled bool `json:"enabled"`
					PVC     struct {
						Enabled bool   `json:"enabled"`
						Size    string `json:"size"`
					} `json:"pvc"`
				} `json:"fileStore"`
				Merge map[string]any `json:"merge"`
			} `json:"jetstream"`
		} `json:"config"`
	}
	if err := yaml.Unmarshal(src, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	c := values.Config
	if !c.Cluster.Enabled || c.Cluster.Replicas != 3 || !c.JetStream.Enabled || !c.JetStream.FileStore.Enabled ||
		!c.JetStream.FileStore.PVC.Enabled || c.JetStream.FileStore.PVC.Size == "" || c.JetStream.Merge["sync_interval"] != "always" {
		t.Errorf("values.yaml should ask for a 3-server JetStream cluster on volumes with sync_interval always: %+v", c)
	}

	// Every Ledger node names the chart's three servers, with the NKey and CA it mounts.
	sts := b.statefulSets[0]
	for _, cm := range b.configMaps {
		for name, hcl := range cm.Data {
			cfg, _ := loadHCL([]byte(hcl), name)
			if cfg == nil {
				continue
			}
			for i := range 3 {
				if host := fmt.Sprintf("nats-%d.nats-headless.%s.svc.cluster.local:4222", i, sts.Namespace); !strings.Contains(cfg.Storage.URL, host) {
					t.Errorf("%s: url %q does not name %s", name, cfg.Storage.URL, host)
				}
			}
			if cfg.Storage.Replicas != 3 || cfg.Storage.TLSCAFile == "" || cfg.Storage.NKeySeedFile == "" {
				t.Errorf("%s: want replicas = 3 and the NATS CA: %+v", name, cfg.Storage)
			}
		}
	}
}

// TestStrictDecodingRefusesMistakes shows that the checks above can fail: a misspelt field,
// a wrong type, a key given twice, an unknown kind, and broken invariants.
func TestStrictDecodingRefusesMistakes(t *testing.T) {
	dir := filepath.Join(deployDir(t), "kubernetes")
	orig, err := os.ReadFile(filepath.Join(dir, "statefulset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"misspelt field", "readOnlyRootFilesystem:", "readOnlyRootFilesytem:", `unknown field "readOnlyRootFilesytem"`},
		{"wrong type", "replicas: 3", "replicas: three", "cannot unmarshal"},
		{"key given twice", "  serviceName: ledger-internal\n", "  serviceName: ledger-internal\n  serviceName: other\n", `key "serviceName" already set`},
		{"unknown kind", "kind: StatefulSet", "kind: StatefullSet", `kind "StatefullSet" is not a kind`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(orig), tc.from, tc.to, 1)
			if bad == string(orig) {
				t.Fatalf("%q is not in statefulset.yaml", tc.from)
			}
			err := (&bundle{}).add("statefulset.yaml", []byte(bad))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decode: %v; want an error containing %q", err, tc.want)
			}
		})
	}

	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, tc := range []struct {
		name   string
		mutate func(*bundle)
		want   string
	}{
		{"Role without patch", func(b *bundle) { b.roles[0].Rules[0].Verbs = []string{"get"} }, "allows get and patch on pods"},
		{"probe path", func(b *bundle) {
			b.statefulSets[0].Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path = "/v1/sys/health?standbyok=true"
		}, "readiness probe path"},
		{"root filesystem writable", func(b *bundle) {
			f := false
			b.statefulSets[0].Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
		}, "readOnlyRootFilesystem"},
		{"selector drift", func(b *bundle) { b.statefulSets[0].Spec.Template.Labels["app.kubernetes.io/name"] = "vault" }, "does not match its pod labels"},
		{"active service on the wrong label", func(b *bundle) {
			for _, s := range b.services {
				if _, ok := s.Spec.Selector["ledger-active"]; ok {
					s.Spec.Selector["ledger-active"] = "false"
				}
			}
		}, "which the active node does not set"},
		{"config for a pod missing", func(b *bundle) { delete(b.configMaps[0].Data, "ledger-2.hcl") }, "no ledger-2.hcl"},
		{"a route missing", func(b *bundle) {
			b.configMaps[0].Data["ledger-0.hcl"] = strings.Replace(b.configMaps[0].Data["ledger-0.hcl"],
				`"nats://ledger-2.ledger-internal.ledger.svc.cluster.local:6222",`, "", 1)
		}, "ledger-0.hcl routes"},
		{"another pod's node_id", func(b *bundle) {
			b.configMaps[0].Data["ledger-1.hcl"] = strings.Replace(b.configMaps[0].Data["ledger-1.hcl"], `node_id  = "ledger-1"`, `node_id  = "ledger-0"`, 1)
		}, `ledger-1.hcl node_id "ledger-0"`},
		{"misspelt key in a config", func(b *bundle) {
			b.configMaps[0].Data["ledger-1.hcl"] = strings.Replace(b.configMaps[0].Data["ledger-1.hcl"], "api_addr", "api_adr", 1)
		}, `unknown key "api_adr"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := loadBundle(t, files...)
			tc.mutate(b)
			probs := strings.Join(b.problems(), "\n")
			if !strings.Contains(probs, tc.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", probs, tc.want)
			}
		})
	}
}

// loadHCL parses a shipped config with the server's loader. A warning is a problem: it means
// a key the server ignores.
func loadHCL(src []byte, name string) (*config.Config, []string) {
	cfg, err := config.Parse(src, name)
	if err != nil {
		return nil, []string{err.Error()}
	}
	return cfg, cfg.Warnings
}
