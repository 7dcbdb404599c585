// Command tiltfile-check checks the repository's Tiltfile without Tilt (Tilt
// itself cannot be built here: its module is not served by the Go proxy).
//
// What it checks, and what it cannot:
//
//	syntax        the file parses as Starlark (go.starlark.net, Tilt's interpreter)
//	names         every name it uses is a Tilt builtin this checker knows
//	calls         it runs, against stand-ins of those builtins that take the
//	              parameters Tilt's API reference documents (an unknown keyword,
//	              a missing argument or a wrong type fails)
//	chart         with -helm: the chart is rendered the way Tilt's helm() does
//	              (`helm template --include-crds`), and every k8s_resource names a
//	              rendered workload, every port_forward a port its containers
//	              declare, and docker_build's image is the one the workloads run
//
// It does not build the image or talk to a cluster: the rest of Tilt's
// semantics (live update, resource dependencies, file watching) go unchecked.
//
// Usage (from the repository root; scripts/tiltfile-check/run.sh):
//
//	tiltfile-check [-file Tiltfile] [-helm PATH] [-- TILT ARGS, e.g. --values FILE]
//
// Prints one verdict line; exits 1 when a check fails.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	"gopkg.in/yaml.v3"
)

// What the Tiltfile declared, for the chart checks.
type tiltfile struct {
	images    []string
	charts    []chartCall
	resources []resourceCall
	flags     map[string]*setting
	args      []string
	warnings  []string
}

type chartCall struct {
	chart, name, namespace string
	values, set            []string
}

type resourceCall struct {
	workload string
	ports    []forward
}

type forward struct{ local, container int }

type setting struct {
	list  bool
	value starlark.Value
}

func main() {
	file := flag.String("file", "Tiltfile", "the Tiltfile")
	helm := flag.String("helm", "", "a helm binary: render the chart and check names and ports against it")
	flag.Parse()
	t := &tiltfile{flags: map[string]*setting{}, args: flag.Args()}
	if err := t.run(*file); err != nil {
		fmt.Fprintln(os.Stderr, err)
		fmt.Printf("tiltfile check: FAILED (%s)\n", lastLine(err.Error()))
		os.Exit(1)
	}
	if *helm == "" {
		fmt.Printf("tiltfile check: OK (Starlark syntax, names, call signatures; chart not rendered: no -helm)\n")
		return
	}
	problems, rendered := t.checkCharts(*helm)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "  %s\n", p)
		}
		fmt.Printf("tiltfile check: FAILED (%d problem(s), listed above)\n", len(problems))
		os.Exit(1)
	}
	fmt.Printf("tiltfile check: OK (Starlark syntax, names, call signatures; %d resources and %d port forwards match the rendered chart: %s)\n",
		len(t.resources), t.forwardCount(), strings.Join(rendered, ", "))
}

// lastLine is the message of a Starlark backtrace (its last line).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func (t *tiltfile) forwardCount() int {
	n := 0
	for _, r := range t.resources {
		n += len(r.ports)
	}
	return n
}

func (t *tiltfile) run(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// The dialect Tilt enables: sets, while loops, top-level if/for, recursion.
	opts := &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, Recursion: true, GlobalReassign: true}
	thread := &starlark.Thread{Name: "tiltfile-check", Print: func(_ *starlark.Thread, msg string) {}}
	_, err = starlark.ExecFileOptions(opts, thread, path, src, t.builtins())
	if err != nil {
		if evalErr, ok := err.(*starlark.EvalError); ok {
			return fmt.Errorf("%s", evalErr.Backtrace())
		}
		return err
	}
	return nil
}

func (t *tiltfile) builtins() starlark.StringDict {
	b := func(name string, fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, fn)
	}
	none := func(name string, params ...any) *starlark.Builtin {
		return b(name, func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return starlark.None, starlark.UnpackArgs(fn.Name(), args, kwargs, params...)
		})
	}
	// Where stand-ins put the arguments they accept but do not look at.
	var any1, any2, any3, any4, any5, any6, any7, any8, any9, any10, any11, any12, any13, any14, any15, any16, any17, any18, any19 starlark.Value
	return starlark.StringDict{
		"TRIGGER_MODE_AUTO":   starlark.MakeInt(0),
		"TRIGGER_MODE_MANUAL": starlark.MakeInt(1),
		"config": starlarkstruct.FromStringDict(starlark.String("config"), starlark.StringDict{
			"define_string_list": b("config.define_string_list", t.define(true)),
			"define_string":      b("config.define_string", t.define(false)),
			"parse":              b("config.parse", t.parse),
		}),
		"os": starlarkstruct.FromStringDict(starlark.String("os"), starlark.StringDict{
			"getenv": b("os.getenv", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				var key string
				var def starlark.Value = starlark.None
				if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "key", &key, "default?", &def); err != nil {
					return nil, err
				}
				if v, ok := os.LookupEnv(key); ok {
					return starlark.String(v), nil
				}
				return def, nil
			}),
		}),
		"allow_k8s_contexts": none("allow_k8s_contexts", "contexts", &any1),
		"warn": b("warn", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var msg string
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "msg", &msg); err != nil {
				return nil, err
			}
			t.warnings = append(t.warnings, msg)
			return starlark.None, nil
		}),
		"fail": b("fail", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var msg string
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "msg", &msg); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("fail(): %s", msg)
		}),
		"blob": b("blob", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var contents string
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "contents", &contents); err != nil {
				return nil, err
			}
			return blob{contents}, nil
		}),
		"read_file": b("read_file", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var path string
			var def starlark.Value = starlark.None
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "file_path", &path, "default?", &def); err != nil {
				return nil, err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				if def != starlark.None {
					return def, nil
				}
				return nil, err
			}
			return blob{string(data)}, nil
		}),
		"docker_build": b("docker_build", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var ref, context string
			var dockerfile starlark.Value = starlark.None
			err := starlark.UnpackArgs(fn.Name(), args, kwargs, "ref", &ref, "context", &context,
				"build_args?", &any1, "dockerfile?", &dockerfile, "dockerfile_contents?", &any3, "live_update?", &any4,
				"match_in_env_vars?", &any5, "ignore?", &any6, "only?", &any7, "entrypoint?", &any8,
				"target?", &any9, "ssh?", &any10, "network?", &any11, "secret?", &any12, "extra_tag?", &any13,
				"container_args?", &any14, "cache_from?", &any15, "pull?", &any16, "platform?", &any17,
				"extra_hosts?", &any18)
			if err != nil {
				return nil, err
			}
			if dockerfile, ok := dockerfile.(starlark.String); ok {
				if _, err := os.Stat(string(dockerfile)); err != nil {
					return nil, fmt.Errorf("docker_build: dockerfile: %w", err)
				}
			}
			t.images = append(t.images, ref)
			return starlark.None, nil
		}),
		"k8s_yaml": b("k8s_yaml", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var yamlArg starlark.Value
			if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "yaml", &yamlArg, "allow_duplicates?", &any1); err != nil {
				return nil, err
			}
			switch v := yamlArg.(type) {
			case blob, starlark.String, *starlark.List:
				return starlark.None, nil
			default:
				return nil, fmt.Errorf("k8s_yaml: want a blob, a path or a list, got %s", v.Type())
			}
		}),
		"helm": b("helm", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var c chartCall
			var values, set starlark.Value = starlark.NewList(nil), starlark.NewList(nil)
			err := starlark.UnpackArgs(fn.Name(), args, kwargs, "paths", &c.chart, "name?", &c.name,
				"namespace?", &c.namespace, "values?", &values, "set?", &set, "kube_version?", &any1,
				"skip_crds?", &any2)
			if err != nil {
				return nil, err
			}
			if c.values, err = strings1(values); err != nil {
				return nil, fmt.Errorf("helm: values: %w", err)
			}
			if c.set, err = strings1(set); err != nil {
				return nil, fmt.Errorf("helm: set: %w", err)
			}
			t.charts = append(t.charts, c)
			return blob{"# helm template " + c.chart}, nil
		}),
		"k8s_resource": b("k8s_resource", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var r resourceCall
			var forwards starlark.Value = starlark.NewList(nil)
			err := starlark.UnpackArgs(fn.Name(), args, kwargs, "workload?", &r.workload, "new_name?", &any1,
				"port_forwards?", &forwards, "extra_pod_selectors?", &any2, "trigger_mode?", &any3,
				"resource_deps?", &any4, "objects?", &any5, "auto_init?", &any6, "pod_readiness?", &any7,
				"links?", &any8, "labels?", &any9, "discovery_strategy?", &any10)
			if err != nil {
				return nil, err
			}
			if r.ports, err = forwardsOf(forwards); err != nil {
				return nil, fmt.Errorf("k8s_resource %s: %w", r.workload, err)
			}
			t.resources = append(t.resources, r)
			return starlark.None, nil
		}),
		"port_forward": b("port_forward", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var local int
			var container starlark.Value = starlark.None
			err := starlark.UnpackArgs(fn.Name(), args, kwargs, "local_port", &local, "container_port?", &container,
				"name?", &any1, "link_path?", &any2, "host?", &any3)
			if err != nil {
				return nil, err
			}
			f := forward{local: local, container: local}
			if c, ok := container.(starlark.Int); ok {
				v, _ := c.Int64()
				f.container = int(v)
			}
			return forwardValue{f}, nil
		}),
		"link": none("link", "url", &any1, "name?", &any2),
		"local_resource": none("local_resource", "name", &any1, "cmd?", &any2, "deps?", &any3,
			"trigger_mode?", &any4, "resource_deps?", &any5, "ignore?", &any6, "auto_init?", &any7,
			"serve_cmd?", &any8, "cmd_bat?", &any9, "serve_cmd_bat?", &any10, "allow_parallel?", &any11,
			"links?", &any12, "tags?", &any13, "env?", &any14, "serve_env?", &any15,
			"readiness_probe?", &any16, "dir?", &any17, "serve_dir?", &any18, "labels?", &any19),
	}
}

// define stands in for config.define_string(_list)(name, args=False, usage="").
func (t *tiltfile) define(list bool) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name string
		var positional bool
		var usage string
		if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "name", &name, "args?", &positional, "usage?", &usage); err != nil {
			return nil, err
		}
		t.flags[name] = &setting{list: list}
		return starlark.None, nil
	}
}

// parse stands in for config.parse(): the arguments after `--` of this
// checker, read as `tilt up -- ARGS` would be.
func (t *tiltfile) parse(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs); err != nil {
		return nil, err
	}
	out := starlark.NewDict(len(t.flags))
	for i := 0; i < len(t.args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(t.args[i], "--"), "=")
		s, ok := t.flags[name]
		if !ok || !strings.HasPrefix(t.args[i], "--") {
			return nil, fmt.Errorf("config.parse: %q is not a defined setting", t.args[i])
		}
		if !hasValue {
			if i+1 >= len(t.args) {
				return nil, fmt.Errorf("config.parse: --%s needs a value", name)
			}
			i++
			value = t.args[i]
		}
		if s.list {
			if s.value == nil {
				s.value = starlark.NewList(nil)
			}
			if err := s.value.(*starlark.List).Append(starlark.String(value)); err != nil {
				return nil, err
			}
		} else {
			s.value = starlark.String(value)
		}
	}
	for name, s := range t.flags {
		if s.value != nil {
			if err := out.SetKey(starlark.String(name), s.value); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func strings1(v starlark.Value) ([]string, error) {
	if s, ok := v.(starlark.String); ok {
		return []string{string(s)}, nil
	}
	iterable, ok := v.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("want a string or a list of strings, got %s", v.Type())
	}
	var out []string
	it := iterable.Iterate()
	defer it.Done()
	var x starlark.Value
	for it.Next(&x) {
		s, ok := x.(starlark.String)
		if !ok {
			return nil, fmt.Errorf("want strings, got %s", x.Type())
		}
		out = append(out, string(s))
	}
	return out, nil
}

func forwardsOf(v starlark.Value) ([]forward, error) {
	var items []starlark.Value
	if iterable, ok := v.(starlark.Iterable); ok && v.Type() != "string" {
		it := iterable.Iterate()
		defer it.Done()
		var x starlark.Value
		for it.Next(&x) {
			items = append(items, x)
		}
	} else {
		items = []starlark.Value{v}
	}
	var out []forward
	for _, item := range items {
		switch x := item.(type) {
		case forwardValue:
			out = append(out, x.f)
		case starlark.Int:
			n, _ := x.Int64()
			out = append(out, forward{int(n), int(n)})
		case starlark.String:
			var f forward
			if _, err := fmt.Sscanf(string(x), "%d:%d", &f.local, &f.container); err != nil {
				if _, err := fmt.Sscanf(string(x), "%d", &f.local); err != nil {
					return nil, fmt.Errorf("port forward %q: want LOCAL or LOCAL:CONTAINER", string(x))
				}
				f.container = f.local
			}
			out = append(out, f)
		default:
			return nil, fmt.Errorf("port forward of type %s", item.Type())
		}
	}
	return out, nil
}

// checkCharts renders each helm() call as Tilt would and compares the
// Tiltfile's resources, ports and image with what it renders.
func (t *tiltfile) checkCharts(helm string) ([]string, []string) {
	var problems []string
	workloads := map[string][]int{} // name → declared container ports
	images := map[string]bool{}
	for _, c := range t.charts {
		if _, err := os.Stat(c.chart); err != nil {
			problems = append(problems, fmt.Sprintf("helm: chart %s: %v", c.chart, err))
			continue
		}
		args := []string{"template", c.name, c.chart, "--include-crds"}
		if c.namespace != "" {
			args = append(args, "--namespace", c.namespace)
		}
		for _, v := range c.values {
			args = append(args, "--values", v)
		}
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(helm, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			problems = append(problems, fmt.Sprintf("helm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String())))
			continue
		}
		if err := collect(&stdout, workloads, images); err != nil {
			problems = append(problems, fmt.Sprintf("helm template %s: %v", c.chart, err))
		}
	}
	if len(problems) > 0 {
		return problems, nil
	}
	for _, r := range t.resources {
		ports, ok := workloads[r.workload]
		if !ok {
			problems = append(problems, fmt.Sprintf("k8s_resource(%q): the chart renders no such workload", r.workload))
			continue
		}
		for _, f := range r.ports {
			if !slices.Contains(ports, f.container) {
				problems = append(problems, fmt.Sprintf("k8s_resource(%q): port_forward to %d, but its containers declare %v", r.workload, f.container, ports))
			}
		}
	}
	for _, ref := range t.images {
		if !images[ref] {
			problems = append(problems, fmt.Sprintf("docker_build(%q): no rendered workload runs that image (Tilt would not inject it)", ref))
		}
	}
	var names []string
	for name := range workloads {
		names = append(names, name)
	}
	sort.Strings(names)
	return problems, names
}

// collect reads rendered manifests: workload names, their container ports
// and the repositories of their images.
func collect(r io.Reader, workloads map[string][]int, images map[string]bool) error {
	dec := yaml.NewDecoder(r)
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Image string `yaml:"image"`
							Ports []struct {
								ContainerPort int `yaml:"containerPort"`
							} `yaml:"ports"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		switch doc.Kind {
		case "Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob":
		default:
			continue
		}
		ports := []int{}
		for _, c := range doc.Spec.Template.Spec.Containers {
			// Tilt matches an image by repository, whatever the tag.
			repo := c.Image
			if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
				repo = repo[:i]
			}
			images[repo] = true
			for _, p := range c.Ports {
				ports = append(ports, p.ContainerPort)
			}
		}
		workloads[doc.Metadata.Name] = ports
	}
}

// blob is Tilt's Blob: YAML or text held in memory.
type blob struct{ text string }

func (b blob) String() string        { return b.text }
func (b blob) Type() string          { return "blob" }
func (b blob) Freeze()               {}
func (b blob) Truth() starlark.Bool  { return b.text != "" }
func (b blob) Hash() (uint32, error) { return starlark.String(b.text).Hash() }

// forwardValue is what port_forward() returns.
type forwardValue struct{ f forward }

func (p forwardValue) String() string {
	return fmt.Sprintf("port_forward(%d, %d)", p.f.local, p.f.container)
}
func (p forwardValue) Type() string          { return "PortForward" }
func (p forwardValue) Freeze()               {}
func (p forwardValue) Truth() starlark.Bool  { return true }
func (p forwardValue) Hash() (uint32, error) { return uint32(p.f.local), nil }
