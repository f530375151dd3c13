// cni-driver — drives CNI plugins through libcni exactly as container runtimes do.
//
// Built in GOPATH mode against Debian's golang-github-appc-cni-dev (libcni 1.1.2) and the
// standard library only, so it builds offline:
//
//	GO111MODULE=off GOPATH=$tmp:/usr/share/gocode go build -o cni-driver ./tests/libcni/cni-driver
//
// Two personalities, chosen by the executable's name (like `ipoib` / `whereabouts`):
//
//	cni-driver --conflist net.conflist --cni-path /opt/cni/bin --netns /run/netns/x \
//	           --container-id abc --ifname net1 --args 'IgnoreUnknown=true;K8S_POD_NAME=p' \
//	           --cache-dir /tmp/cache add          # add | check | del | cached | gc | status | version
//	cnitool add <net> <netns>                      # upstream cnitool's interface (NETCONFPATH,
//	                                               # CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS)
//
// add/check/del call AddNetworkList / CheckNetworkList / DelNetworkList with libcni's result
// cache, as containerd, CRI-O and Multus do. libcni 1.1.2 has no GC or STATUS, so gc and status
// execute each plugin of the list the way libcni 1.3's GCNetworkList / GetStatusNetworkList do:
// CNI_COMMAND=GC|STATUS, the other five CNI_* variables set to empty strings, stdin = the plugin
// config with the list's name and cniVersion injected plus (gc) both `cni.dev/valid-attachments`
// and the legacy `cni.dev/attachments` (libcni 1.3, containernetworking/cni#1101).
//
// Output: add prints the result JSON; cached prints libcni's cached result; version prints the
// plugin's VERSION answer; the others print nothing on success. On failure the error text goes
// to stderr, a CNI error (code/msg/details) as JSON to stdout, and the exit status is 1 (2 for
// usage errors).
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// attachment is one element of `cni.dev/valid-attachments` (SPEC.md, "GC: Clean up any stale
// resources").
type attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// attachmentList collects repeated --valid-attachment CONTAINERID/IFNAME flags.
type attachmentList []attachment

func (l *attachmentList) String() string { return fmt.Sprint(*l) }

func (l *attachmentList) Set(v string) error {
	i := strings.LastIndex(v, "/")
	if i <= 0 || i == len(v)-1 {
		return fmt.Errorf("want CONTAINERID/IFNAME, got %q", v)
	}
	*l = append(*l, attachment{ContainerID: v[:i], IfName: v[i+1:]})
	return nil
}

// parseCNIArgs splits CNI_ARGS the way runtimes build RuntimeConf.Args: pairs separated by ';',
// key and value split on the FIRST '=' (values may contain '='), duplicated keys kept in order
// (Multus thin mode repeats the K8S_* keys).
func parseCNIArgs(s string) ([][2]string, error) {
	var out [][2]string
	if s == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		i := strings.Index(pair, "=")
		if i <= 0 {
			return nil, fmt.Errorf("invalid CNI_ARGS pair %q", pair)
		}
		out = append(out, [2]string{pair[:i], pair[i+1:]})
	}
	return out, nil
}

// loadList reads a .conflist, or a single-plugin .conf wrapped into a list (as runtimes do).
func loadList(path string) (*libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, ok := probe["plugins"]; ok {
		return libcni.ConfListFromBytes(data)
	}
	conf, err := libcni.ConfFromBytes(data)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}

// negotiatedVersion is the version libcni 1.3 would use for the list: the highest entry of a
// `cniVersions` array (libcni >= 1.2 prefers it; 1.1.2 ignores it and uses cniVersion), else
// cniVersion. Only gc and status use it: add/check/del stay on libcni 1.1.2's own choice.
func negotiatedVersion(list *libcni.NetworkConfigList) string {
	best := list.CNIVersion
	var raw struct {
		CNIVersions []string `json:"cniVersions"`
	}
	if json.Unmarshal(list.Bytes, &raw) != nil {
		return best
	}
	for _, v := range raw.CNIVersions {
		if newer, err := version.GreaterThanOrEqualTo(v, best); err == nil && newer {
			best = v
		}
	}
	return best
}

// execEachPlugin runs `command` on every plugin of the list as libcni 1.3 runs GC and STATUS:
// the list's name and cniVersion injected, `extra` keys injected, an empty RuntimeConf (so
// CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_ARGS are present and empty). Errors of all
// plugins are joined, like errors.Join in GCNetworkList.
func execEachPlugin(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList,
	command string, extra map[string]interface{}) error {
	cniVersion := negotiatedVersion(list)
	if ok, _ := version.GreaterThanOrEqualTo(cniVersion, "1.1.0"); !ok {
		return fmt.Errorf("configuration version %q does not support the %s command", cniVersion, command)
	}
	inject := map[string]interface{}{"name": list.Name, "cniVersion": cniVersion}
	for k, v := range extra {
		inject[k] = v
	}
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}
	args := &invoke.Args{Command: command, Path: strings.Join(cni.Path, string(os.PathListSeparator))}
	var errs []string
	for _, plugin := range list.Plugins {
		conf, err := libcni.InjectConf(plugin, inject)
		if err != nil {
			errs = append(errs, fmt.Sprintf("plugin %s: %v", plugin.Network.Type, err))
			continue
		}
		path, err := exec.FindInPath(plugin.Network.Type, cni.Path)
		if err != nil {
			errs = append(errs, fmt.Sprintf("plugin %s: %v", plugin.Network.Type, err))
			continue
		}
		if err := invoke.ExecPluginWithoutResult(ctx, path, conf.Bytes, args, exec); err != nil {
			// A STATUS failure is reported as the plugin's own error so its code (50/51)
			// survives.
			if command == "STATUS" {
				return err
			}
			errs = append(errs, fmt.Sprintf("failed to %s plugin %s: %v", command, plugin.Network.Type, err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// gcCachedAttachments is the first half of libcni 1.3's GCNetworkList: every attachment of
// this network in the result cache that is not listed as valid gets a DelNetworkList. libcni
// 1.1.2's cache has no netns, so CNI_NETNS is empty for these DELs (as 1.3 does for entries
// cached by older versions).
func gcCachedAttachments(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList,
	cacheDir string, valid attachmentList) error {
	entries, err := os.ReadDir(filepath.Join(cacheDir, "results"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	keep := map[attachment]bool{}
	for _, a := range valid {
		keep[a] = true
	}
	// libcni 1.1.2 cannot convert a cached result to 1.1.0 (it knows no 1.1.0 result type), so
	// these DELs go out at 1.0.0, the highest version it can express.
	delList := *list
	if ok, _ := version.GreaterThanOrEqualTo(delList.CNIVersion, "1.1.0"); ok {
		delList.CNIVersion = "1.0.0"
	}
	var errs []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(cacheDir, "results", e.Name()))
		if err != nil {
			continue
		}
		var cached struct {
			Kind        string                 `json:"kind"`
			ContainerID string                 `json:"containerId"`
			IfName      string                 `json:"ifName"`
			NetworkName string                 `json:"networkName"`
			CniArgs     [][2]string            `json:"cniArgs,omitempty"`
			CapArgs     map[string]interface{} `json:"capabilityArgs,omitempty"`
		}
		if json.Unmarshal(data, &cached) != nil || cached.Kind != libcni.CNICacheV1 ||
			cached.NetworkName != list.Name {
			continue
		}
		if keep[attachment{cached.ContainerID, cached.IfName}] {
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: cached.ContainerID, IfName: cached.IfName,
			Args: cached.CniArgs, CapabilityArgs: cached.CapArgs}
		if err := cni.DelNetworkList(ctx, &delList, rt); err != nil {
			errs = append(errs, fmt.Sprintf("failed to delete stale attachment %s %s: %v",
				cached.ContainerID, cached.IfName, err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// fail reports err the way a caller of libcni sees it and exits 1.
func fail(verb string, err error) {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		doc, _ := json.Marshal(cniErr)
		fmt.Println(string(doc))
	}
	fmt.Fprintf(os.Stderr, "%s: %s: %v\n", filepath.Base(os.Args[0]), verb, err)
	os.Exit(1)
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "%s: %s\nusage: cni-driver [flags] add|check|del|cached|gc|status|version\n",
		filepath.Base(os.Args[0]), msg)
	flag.PrintDefaults()
	os.Exit(2)
}

func driverMain() {
	conflist := flag.String("conflist", "", "network configuration list (.conflist, or a single .conf)")
	cniPath := flag.String("cni-path", os.Getenv("CNI_PATH"), "plugin directories, ':'-separated (default $CNI_PATH)")
	netns := flag.String("netns", "", "network namespace path (CNI_NETNS)")
	containerID := flag.String("container-id", "", "container ID (CNI_CONTAINERID)")
	ifname := flag.String("ifname", "eth0", "interface name inside the container (CNI_IFNAME)")
	cniArgs := flag.String("args", "", "CNI_ARGS, 'K=V;K=V' (duplicates kept, split on the first '=')")
	capArgs := flag.String("cap-args", "", "capability arguments as a JSON object (runtimeConfig)")
	cacheDir := flag.String("cache-dir", libcni.CacheDir, "libcni result cache directory")
	var valid attachmentList
	flag.Var(&valid, "valid-attachment", "gc: CONTAINERID/IFNAME to keep (repeatable)")
	noAttachments := flag.Bool("no-attachments", false, "gc: send neither attachment key (as cnitool gc does)")
	cachedDel := flag.Bool("gc-cached-del", false,
		"gc: first DEL every cached attachment not listed, as libcni 1.3's GCNetworkList does")

	// The verb may come before, between or after the flags.
	verb := ""
	for args := os.Args[1:]; ; {
		_ = flag.CommandLine.Parse(args)
		if flag.NArg() == 0 {
			break
		}
		if verb != "" {
			usage(fmt.Sprintf("unexpected arguments %q", flag.Args()))
		}
		verb, args = flag.Arg(0), flag.Args()[1:]
	}
	if verb == "" {
		usage("missing verb")
	}

	paths := filepath.SplitList(*cniPath)
	cni := libcni.NewCNIConfigWithCacheDir(paths, *cacheDir, nil)
	ctx := context.Background()

	if verb == "version" {
		// The plugin type is the first plugin of the list when a list is given, else the flag
		// argument is required.
		if *conflist == "" {
			usage("version needs --conflist")
		}
		list, err := loadList(*conflist)
		if err != nil {
			fail(verb, err)
		}
		info, err := cni.GetVersionInfo(ctx, list.Plugins[0].Network.Type)
		if err != nil {
			fail(verb, err)
		}
		doc, _ := json.Marshal(map[string]interface{}{"supportedVersions": info.SupportedVersions()})
		fmt.Println(string(doc))
		return
	}

	if *conflist == "" {
		usage("--conflist is required")
	}
	list, err := loadList(*conflist)
	if err != nil {
		fail(verb, err)
	}
	pluginArgs, err := parseCNIArgs(*cniArgs)
	if err != nil {
		fail(verb, err)
	}
	var capabilityArgs map[string]interface{}
	if *capArgs != "" {
		if err := json.Unmarshal([]byte(*capArgs), &capabilityArgs); err != nil {
			fail(verb, fmt.Errorf("--cap-args: %w", err))
		}
	}
	rt := &libcni.RuntimeConf{
		ContainerID:    *containerID,
		NetNS:          *netns,
		IfName:         *ifname,
		Args:           pluginArgs,
		CapabilityArgs: capabilityArgs,
	}

	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(verb, err)
		}
		if err := result.Print(); err != nil {
			fail(verb, err)
		}
		fmt.Println()
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(verb, err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(verb, err)
		}
	case "cached":
		result, err := cni.GetNetworkListCachedResult(list, rt)
		if err != nil {
			fail(verb, err)
		}
		if result == nil {
			fail(verb, fmt.Errorf("no cached result for %s/%s/%s", list.Name, rt.ContainerID, rt.IfName))
		}
		if err := result.Print(); err != nil {
			fail(verb, err)
		}
		fmt.Println()
	case "gc":
		var errs []string
		if *cachedDel {
			if err := gcCachedAttachments(ctx, cni, list, *cacheDir, valid); err != nil {
				errs = append(errs, err.Error())
			}
		}
		extra := map[string]interface{}{}
		if !*noAttachments {
			list := []attachment(valid)
			if list == nil {
				list = []attachment{}
			}
			extra["cni.dev/valid-attachments"] = list
			extra["cni.dev/attachments"] = list
		}
		if err := execEachPlugin(ctx, cni, list, "GC", extra); err != nil {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			fail(verb, errors.New(strings.Join(errs, "; ")))
		}
	case "status":
		if err := execEachPlugin(ctx, cni, list, "STATUS", nil); err != nil {
			fail(verb, err)
		}
	default:
		usage(fmt.Sprintf("unknown verb %q", verb))
	}
}

// cnitoolMain mirrors upstream cnitool (containernetworking/cni/cnitool, not shipped by Debian):
// `cnitool add|check|del|gc|status <net> <netns>`, the network loaded by name from NETCONFPATH
// (default /etc/cni/net.d), plugins from CNI_PATH, CNI_IFNAME (default eth0), CNI_ARGS, CAP_ARGS
// (JSON), container ID derived from the netns path. Unlike cnitool 1.1, CNI_ARGS values may
// contain '='.
func cnitoolMain() {
	if len(os.Args) < 3 || (len(os.Args) < 4 && os.Args[1] != "gc" && os.Args[1] != "status") {
		fmt.Fprintln(os.Stderr, "usage: cnitool add|check|del <net> <netns>\n       cnitool gc|status <net>\n"+
			"environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0), "+
			"CNI_ARGS, CAP_ARGS (JSON), CNI_CACHE_DIR (default /var/lib/cni)")
		os.Exit(2)
	}
	verb, netName := os.Args[1], os.Args[2]
	netdir := os.Getenv("NETCONFPATH")
	if netdir == "" {
		netdir = "/etc/cni/net.d"
	}
	list, err := libcni.LoadConfList(netdir, netName)
	if err != nil {
		fail(verb, err)
	}
	var capabilityArgs map[string]interface{}
	if v := os.Getenv("CAP_ARGS"); v != "" {
		if err := json.Unmarshal([]byte(v), &capabilityArgs); err != nil {
			fail(verb, fmt.Errorf("CAP_ARGS: %w", err))
		}
	}
	pluginArgs, err := parseCNIArgs(os.Getenv("CNI_ARGS"))
	if err != nil {
		fail(verb, err)
	}
	ifName, ok := os.LookupEnv("CNI_IFNAME")
	if !ok {
		ifName = "eth0"
	}
	cacheDir := os.Getenv("CNI_CACHE_DIR")
	if cacheDir == "" {
		cacheDir = libcni.CacheDir
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cacheDir, nil)
	ctx := context.Background()

	switch verb {
	case "gc":
		// cnitool gc sends no attachment list: the plugin has no information and must
		// destroy nothing (SPEC.md GC).
		if err := execEachPlugin(ctx, cni, list, "GC", nil); err != nil {
			fail(verb, err)
		}
		return
	case "status":
		if err := execEachPlugin(ctx, cni, list, "STATUS", nil); err != nil {
			fail(verb, err)
		}
		return
	}

	netns, err := filepath.Abs(os.Args[3])
	if err != nil {
		fail(verb, err)
	}
	sum := sha512.Sum512([]byte(netns))
	rt := &libcni.RuntimeConf{
		ContainerID:    fmt.Sprintf("cnitool-%x", sum[:10]),
		NetNS:          netns,
		IfName:         ifName,
		Args:           pluginArgs,
		CapabilityArgs: capabilityArgs,
	}
	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(verb, err)
		}
		_ = result.Print()
		fmt.Println()
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(verb, err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(verb, err)
		}
	default:
		fmt.Fprintf(os.Stderr, "cnitool: unknown command %q\n", verb)
		os.Exit(2)
	}
}

func main() {
	if filepath.Base(os.Args[0]) == "cnitool" {
		cnitoolMain()
		return
	}
	driverMain()
}
