package validate

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Test names of the Network category.
const (
	TestAdapterCount          = "Validate Network Adapter Count"
	TestClusterNetworkConfig  = "Validate Cluster Network Configuration"
	TestNetworkCommunication  = "Validate Network Communication"
	TestIPConfiguration       = "Validate IP Configuration"
	TestUniqueAddresses       = "Validate Unique IP Addresses"
	TestClusterIPAddress      = "Validate Cluster IP Address"
	network                   = CategoryNetwork
	minAdapters               = 2
	staticAddressExampleShape = "192.0.2.50/24"
)

func networkTests(e *env) []Test {
	return []Test{
		adapterCountTest(e),
		clusterNetworkConfigTest(e),
		networkCommunicationTest(e),
		ipConfigurationTest(e),
		uniqueAddressesTest(e),
		clusterIPAddressTest(e),
	}
}

func adapterCountTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(network, TestAdapterCount, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	var clauses, counts []string
	for _, n := range e.nodes {
		c := len(n.Adapters)
		counts = append(counts, fmt.Sprintf("%s: %d", n.name, c))
		if c < minAdapters {
			clauses = append(clauses, fmt.Sprintf("host %q has %s", n.name, plural(c, "network adapter")))
		}
	}
	if len(clauses) > 0 {
		return test(network, TestAdapterCount, AttrNodes, Failed,
			fmt.Sprintf("%s; failover clustering needs at least %d", problems(clauses), minAdapters))
	}
	return test(network, TestAdapterCount, AttrNodes, Passed,
		fmt.Sprintf("every node has at least %d network adapters (%s)", minAdapters, strings.Join(counts, ", ")))
}

// allNetworks returns every valid network any node has an adapter in, in
// order of first appearance among the sorted nodes' adapters.
func allNetworks(nodes []node) []clusterNetwork {
	var out []clusterNetwork
	seen := map[netip.Prefix]bool{}
	for _, n := range nodes {
		for _, a := range n.Adapters {
			if !a.Network.IsValid() {
				continue
			}
			p := a.Network.Masked()
			if seen[p] {
				continue
			}
			seen[p] = true
			out = append(out, clusterNetwork{prefix: p, label: a.Name})
		}
	}
	return out
}

func clusterNetworkConfigTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(network, TestClusterNetworkConfig, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	nets := allNetworks(e.nodes)
	var clauses []string
	for _, n := range e.nodes {
		var lacking []string
		for _, cn := range nets {
			if !hasNetwork(n.Host, cn.prefix) {
				lacking = append(lacking, cn.String())
			}
		}
		switch len(lacking) {
		case 0:
		case 1:
			clauses = append(clauses, fmt.Sprintf("host %q has no adapter in network %s", n.name, lacking[0]))
		default:
			clauses = append(clauses, fmt.Sprintf("host %q has no adapter in networks %s", n.name, joinAnd(lacking)))
		}
	}
	if len(clauses) > 0 {
		return test(network, TestClusterNetworkConfig, AttrNodes, Failed,
			problems(clauses)+"; every node needs an adapter in each network the other nodes use")
	}
	return test(network, TestClusterNetworkConfig, AttrNodes, Passed,
		fmt.Sprintf("%s the same %s: %s", allNodesHave(len(e.nodes)),
			pluralWord(len(e.networks), "network"), networkList(e.networks)))
}

func networkCommunicationTest(e *env) Test {
	switch {
	case len(e.nodes) == 0:
		return test(network, TestNetworkCommunication, AttrNodes, Passed, noRegisteredNodeCheck)
	case len(e.networks) == 0:
		return test(network, TestNetworkCommunication, AttrNodes, Failed,
			fmt.Sprintf("no network has an adapter on every node (%s), so the nodes cannot communicate; give every node an adapter in the same networks",
				quoteHosts(e.nodeNames())))
	case (len(e.in.Probing) > 0 || len(e.notProbing()) > 0) && len(e.nodes) > 1:
		return probedCommunicationTest(e)
	case len(e.nodes) == 1:
		return test(network, TestNetworkCommunication, AttrNodes, Passed,
			fmt.Sprintf("the only node, %q, is on %s: %s", e.nodes[0].name,
				plural(len(e.networks), "network"), networkList(e.networks)))
	case len(e.networks) == 1:
		return test(network, TestNetworkCommunication, AttrNodes, Warning,
			fmt.Sprintf("the nodes reach each other on only one network, %s, a single point of failure; add a second network (such as a heartbeat network) on every node",
				e.networks[0]))
	}
	return test(network, TestNetworkCommunication, AttrNodes, Passed,
		fmt.Sprintf("%s reach each other on %s: %s", plural(len(e.nodes), "node"),
			plural(len(e.networks), "network"), networkList(e.networks)))
}

func ipConfigurationTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(network, TestIPConfiguration, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	var clauses []string
	checked := 0
	for _, n := range e.nodes {
		for _, a := range n.Adapters {
			checked++
			where := fmt.Sprintf("adapter %q on host %q", a.Name, n.name)
			addr := a.Address.Unmap()
			switch {
			case !a.Network.IsValid():
				clauses = append(clauses, where+" has no valid network")
			case !addr.IsValid():
				clauses = append(clauses, where+" has no valid address")
			case !a.Network.Masked().Contains(addr):
				clauses = append(clauses, fmt.Sprintf("%s has address %s, outside its network %s",
					where, addr, a.Network.Masked()))
			default:
				if what := reservedAddress(a.Network.Masked(), addr); what != "" {
					clauses = append(clauses, fmt.Sprintf("%s has address %s, the %s of %s",
						where, addr, what, a.Network.Masked()))
				}
			}
		}
	}
	if len(clauses) > 0 {
		return test(network, TestIPConfiguration, AttrNodes, Failed,
			problems(clauses)+"; each adapter needs a host address inside its own network")
	}
	return test(network, TestIPConfiguration, AttrNodes, Passed,
		fmt.Sprintf("every adapter address lies inside its own network (%s checked)", plural(checked, "adapter")))
}

// reservedAddress returns "network address" or "broadcast address" when addr
// is one of those of p (IPv4 networks of /30 and wider), else "".
func reservedAddress(p netip.Prefix, addr netip.Addr) string {
	p = p.Masked()
	if !addr.Is4() || !p.Addr().Is4() || p.Bits() > 30 || !p.Contains(addr) {
		return ""
	}
	if addr == p.Addr() {
		return "network address"
	}
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	if addr == netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}) {
		return "broadcast address"
	}
	return ""
}

// owner is one use of an address by a registered host.
type owner struct {
	host    string
	adapter string // "" for the host's own Address
}

// addressOwners maps every address used by a registered host (its Address
// and its adapters' addresses) to its users, hosts in name order.
func addressOwners(hosts map[string]Host) map[netip.Addr][]owner {
	names := make([]string, 0, len(hosts))
	for n := range hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[netip.Addr][]owner{}
	for _, n := range names {
		h := hosts[n]
		if a := h.Address.Unmap(); a.IsValid() {
			out[a] = append(out[a], owner{host: n})
		}
		for _, ad := range h.Adapters {
			if a := ad.Address.Unmap(); a.IsValid() {
				out[a] = append(out[a], owner{host: n, adapter: ad.Name})
			}
		}
	}
	return out
}

// describeOwners renders `host "a" (host address, adapter "Public") and host "b" (adapter "Public")`.
func describeOwners(owners []owner) string {
	var hosts []string
	uses := map[string][]string{}
	for _, o := range owners {
		if _, ok := uses[o.host]; !ok {
			hosts = append(hosts, o.host)
		}
		use := "host address"
		if o.adapter != "" {
			use = fmt.Sprintf("adapter %q", o.adapter)
		}
		uses[o.host] = append(uses[o.host], use)
	}
	parts := make([]string, len(hosts))
	for i, h := range hosts {
		parts[i] = fmt.Sprintf("host %q (%s)", h, strings.Join(uses[h], ", "))
	}
	return joinAnd(parts)
}

func uniqueAddressesTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(network, TestUniqueAddresses, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	isNode := map[string]bool{}
	checked := 0
	for _, n := range e.nodes {
		isNode[n.name] = true
		for _, a := range n.Adapters {
			if a.Address.IsValid() {
				checked++
			}
		}
	}
	owners := addressOwners(e.in.Hosts)
	addrs := make([]netip.Addr, 0, len(owners))
	for a := range owners {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	var clauses []string
	for _, a := range addrs {
		os := owners[a]
		if conflicting(os, isNode) {
			clauses = append(clauses, fmt.Sprintf("address %s is used by %s", a, describeOwners(os)))
		}
	}
	if len(clauses) > 0 {
		return test(network, TestUniqueAddresses, AttrNodes, Failed,
			problems(clauses)+"; every adapter address must be unique among registered hosts")
	}
	return test(network, TestUniqueAddresses, AttrNodes, Passed,
		fmt.Sprintf("checked %s of the nodes: each is unique among registered hosts", plural(checked, "adapter address")))
}

// conflicting reports whether an address's users clash in a way that
// concerns a node: two different hosts, or two adapters of one host. A host
// whose own Address is also one of its adapters' addresses is normal.
func conflicting(os []owner, isNode map[string]bool) bool {
	node := false
	hosts := map[string]bool{}
	adapters := map[string]int{}
	for _, o := range os {
		node = node || isNode[o.host]
		hosts[o.host] = true
		if o.adapter != "" {
			adapters[o.host]++
		}
	}
	if !node {
		return false
	}
	if len(hosts) > 1 {
		return true
	}
	for _, c := range adapters {
		if c > 1 {
			return true
		}
	}
	return false
}

func clusterIPAddressTest(e *env) Test {
	fail := func(msg string) Test {
		return test(network, TestClusterIPAddress, AttrStaticAddress, Failed, msg)
	}
	raw := e.in.StaticAddress
	if raw == "" {
		return fail("static_address is empty; " + e.staticAllowed())
	}
	p, err := netip.ParsePrefix(raw)
	if err != nil {
		if a, aerr := netip.ParseAddr(raw); aerr == nil {
			return fail(fmt.Sprintf("static_address %q has no prefix length; write it as a CIDR such as %q",
				raw, e.suggestCIDR(a.Unmap())))
		}
		return fail(fmt.Sprintf("static_address %q is not a valid CIDR address; %s", raw, e.staticAllowed()))
	}
	addr := p.Addr().Unmap()
	var in *clusterNetwork
	for i := range e.networks {
		if e.networks[i].prefix.Contains(addr) {
			in = &e.networks[i]
			break
		}
	}
	if in == nil {
		return fail(fmt.Sprintf("static_address %q is outside every cluster network; %s", raw, e.staticAllowed()))
	}
	var clauses []string
	if prefixBits(p) != in.prefix.Bits() {
		clauses = append(clauses, fmt.Sprintf("static_address %q has prefix length /%d but its cluster network %s is /%d (write %q)",
			raw, prefixBits(p), in, in.prefix.Bits(), netip.PrefixFrom(addr, in.prefix.Bits()).String()))
	}
	if what := reservedAddress(in.prefix, addr); what != "" {
		clauses = append(clauses, fmt.Sprintf("static_address %q is the %s of cluster network %s", raw, what, in))
	}
	if users := e.addressUsers(addr); users != "" {
		clauses = append(clauses, fmt.Sprintf("static_address %q is already used by %s", raw, users))
	}
	if len(clauses) > 0 {
		return fail(fmt.Sprintf("%s; choose an unused host address in %s", problems(clauses), in))
	}
	return test(network, TestClusterIPAddress, AttrStaticAddress, Passed,
		fmt.Sprintf("static_address %s lies in cluster network %s and no registered host or other cluster uses it", raw, in))
}

// prefixBits returns the prefix length in the address's own family (an
// IPv4-mapped IPv6 prefix counts as IPv4).
func prefixBits(p netip.Prefix) int {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return p.Bits() - 96
	}
	return p.Bits()
}

// addressUsers describes who already uses addr: registered hosts (their
// Address or adapters) and other clusters; "" if nobody.
func (e *env) addressUsers(addr netip.Addr) string {
	var parts []string
	if os := addressOwners(e.in.Hosts)[addr]; len(os) > 0 {
		parts = append(parts, describeOwners(os))
	}
	clusters := make([]string, 0, len(e.in.OtherClusterAddresses))
	for c := range e.in.OtherClusterAddresses {
		clusters = append(clusters, c)
	}
	sort.Strings(clusters)
	for _, c := range clusters {
		if a, ok := parseAddrOrPrefix(e.in.OtherClusterAddresses[c]); ok && a == addr {
			parts = append(parts, fmt.Sprintf("cluster %q (its static_address)", c))
		}
	}
	return joinAnd(parts)
}

func parseAddrOrPrefix(s string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

// staticAllowed says what a static address may be.
func (e *env) staticAllowed() string {
	if len(e.networks) == 0 {
		return "it must be a CIDR address such as " + staticAddressExampleShape +
			" in a cluster network, but the nodes share no network"
	}
	nets := make([]string, len(e.networks))
	for i, n := range e.networks {
		nets[i] = n.String()
	}
	return "it must be an unused CIDR address in a cluster network: " + joinOr(nets)
}

// suggestCIDR writes addr with the prefix length of the cluster network
// holding it (or /24 for IPv4, /64 for IPv6).
func (e *env) suggestCIDR(addr netip.Addr) string {
	for _, n := range e.networks {
		if n.prefix.Contains(addr) {
			return netip.PrefixFrom(addr, n.prefix.Bits()).String()
		}
	}
	if addr.Is4() {
		return netip.PrefixFrom(addr, 24).String()
	}
	return netip.PrefixFrom(addr, 64).String()
}

func networkList(nets []clusterNetwork) string {
	s := make([]string, len(nets))
	for i, n := range nets {
		s[i] = n.String()
	}
	return strings.Join(s, ", ")
}

// pluralWord returns "network" or "networks" (no count).
func pluralWord(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// joinOr joins items as "a", "a or b" or "a, b or c".
func joinOr(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
