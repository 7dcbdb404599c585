// Command dockerfile-check checks the repository's Dockerfile and
// .dockerignore without Docker, with BuildKit's own Dockerfile frontend:
//
//	parser ─▶ instructions ─▶ dockerfile2llb.DockerfileLint   (what `docker build --check` runs)
//	        └▶ AgentAuth's rules for this image (below)
//
// Base images cannot be pulled here, so the linter gets a stand-in for each
// base image's config (platform linux/amd64, its documented PATH and user):
// rules that read a base image's real contents (its ENV beyond PATH, its
// labels) see less than a real build would.
//
// AgentAuth's rules:
//   - the build stage is FROM rust:<workspace rust-version>-bookworm and runs
//     exactly `cargo build --release --locked -p agentauth-cli --features
//     gcp-kms` (every root-key backend; not `dev`: the release binary holds
//     no test code, DESIGN §13);
//   - it COPYs Cargo.toml, Cargo.lock and every workspace member;
//   - the final stage is FROM gcr.io/distroless/cc-debian12:nonroot, runs as
//     USER 65532 (numeric, for runAsNonRoot), ENTRYPOINT ["/agentauth"] in
//     exec form, and holds the UI build at /usr/share/agentauth/approval-ui;
//   - .dockerignore parses, keeps every file the build stage copies, and
//     leaves out target dirs, node_modules and approval-ui/dist.
//
// Usage (from the repository root; scripts/dockerfile-check/run.sh):
//
//	dockerfile-check [-root .]
//
// Prints one verdict line; exits 1 when a check fails.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/dockerignore"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"
	"github.com/pelletier/go-toml/v2"
)

const (
	buildCommand = "cargo build --release --locked -p agentauth-cli --features gcp-kms"
	runtimeImage = "gcr.io/distroless/cc-debian12:nonroot"
	uiDir        = "/usr/share/agentauth/approval-ui"
	nonrootUser  = "65532"
)

type checker struct{ problems []string }

func (c *checker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func main() {
	root := flag.String("root", ".", "the repository root")
	flag.Parse()
	c := &checker{}
	dockerfile, err := os.ReadFile(filepath.Join(*root, "Dockerfile"))
	if err != nil {
		fmt.Printf("dockerfile check: FAILED: %v\n", err)
		os.Exit(1)
	}
	rustVersion, members, err := workspace(filepath.Join(*root, "Cargo.toml"))
	if err != nil {
		c.fail("%v", err)
	}
	warnings := lint(c, dockerfile)
	stages, metaArgs := parse(c, dockerfile)
	if stages != nil {
		checkArgDefault(c, metaArgs, "RUST_VERSION", rustVersion)
		checkStages(c, stages, members)
	}
	ignore := checkDockerignore(c, *root, members)
	for _, w := range warnings {
		c.fail("lint %s", w)
	}
	if len(c.problems) > 0 {
		for _, p := range c.problems {
			fmt.Fprintf(os.Stderr, "  %s\n", p)
		}
		fmt.Printf("dockerfile check: FAILED (%d problem(s), listed above)\n", len(c.problems))
		os.Exit(1)
	}
	fmt.Printf("dockerfile check: OK: %d stages, BuildKit lint clean, rust %s, %d workspace members copied, %d .dockerignore patterns\n",
		len(stages), rustVersion, len(members), ignore)
}

// workspace reads the rust-version and the member folders of the workspace.
func workspace(path string) (string, []string, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var manifest struct {
		Workspace struct {
			Members []string `toml:"members"`
			Package struct {
				RustVersion string `toml:"rust-version"`
			} `toml:"package"`
		} `toml:"workspace"`
	}
	if err := toml.Unmarshal(text, &manifest); err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	return manifest.Workspace.Package.RustVersion, manifest.Workspace.Members, nil
}

// lint runs BuildKit's Dockerfile checks, the ones `docker build --check`
// reports, with every rule on (experimental ones too): without a BuildKit
// client the rules come from the file's `# check=` directive, so one is put
// in front when the file has none (and line numbers shifted back).
func lint(c *checker, dockerfile []byte) []string {
	shift := 0
	if directive, _, _, _ := parser.ParseDirective("check", dockerfile); directive == "" {
		dockerfile = append([]byte("# check=experimental=all\n"), dockerfile...)
		shift = 1
	}
	source := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dockerfile)
	source.Definition = &llb.Definition{} // what a BuildKit client would have marshalled
	results, err := dockerfile2llb.DockerfileLint(context.Background(), dockerfile, dockerfile2llb.ConvertOpt{
		SourceMap:    source,
		MetaResolver: standIns{},
	})
	if err != nil {
		c.fail("lint: %v", err)
		return nil
	}
	if results.Error != nil {
		c.fail("the Dockerfile does not build: %s", results.Error.Message)
	}
	var out []string
	for _, w := range results.Warnings {
		line := 0
		if len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line) - shift
		}
		out = append(out, fmt.Sprintf("Dockerfile:%d: %s: %s (%s)", line, w.RuleName, w.Detail, w.URL))
	}
	return out
}

// standIns answers for the base images: no registry is reachable here.
type standIns struct{}

func (standIns) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	user := ""
	switch {
	case strings.Contains(ref, "/rust:"):
		path = "/usr/local/cargo/bin:" + path
	case strings.Contains(ref, "distroless"):
		user = nonrootUser
	}
	config := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=" + path}, "User": user},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{string(digest.FromString(ref))}},
	}
	data, err := json.Marshal(config)
	return ref, "", data, err
}

func parse(c *checker, dockerfile []byte) ([]instructions.Stage, []instructions.ArgCommand) {
	ast, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		c.fail("parse: %v", err)
		return nil, nil
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		c.fail("instructions: %v", err)
		return nil, nil
	}
	if len(stages) == 0 {
		c.fail("no stage")
		return nil, nil
	}
	return stages, metaArgs
}

func checkStages(c *checker, stages []instructions.Stage, members []string) {
	byName := map[string]*instructions.Stage{}
	for i := range stages {
		byName[stages[i].Name] = &stages[i]
	}
	build, ui := byName["build"], byName["ui"]
	final := &stages[len(stages)-1]
	if build == nil || ui == nil {
		c.fail("expected stages named build (cargo) and ui (npm); found %v", stageNames(stages))
		return
	}

	// The ARG default is what an unparameterised build uses.
	if want := "rust:${RUST_VERSION}-bookworm"; build.BaseName != want {
		c.fail("build stage: FROM %s, want %s", build.BaseName, want)
	}

	var runs []string
	copied := map[string]bool{}
	for _, cmd := range build.Commands {
		switch cmd := cmd.(type) {
		case *instructions.RunCommand:
			runs = append(runs, strings.Join(cmd.CmdLine, " "))
		case *instructions.CopyCommand:
			if cmd.From == "" {
				for _, src := range cmd.SourcePaths {
					copied[strings.TrimSuffix(src, "/")] = true
				}
			}
		}
	}
	builds := 0
	for _, run := range runs {
		if strings.Contains(run, "cargo build") {
			builds++
			first := strings.TrimSpace(strings.SplitN(run, "&&", 2)[0])
			if first != buildCommand {
				c.fail("build stage runs %q, want exactly %q (every signer, no dev feature: no test code in the image)", first, buildCommand)
			}
		}
	}
	if builds != 1 {
		c.fail("build stage: %d `cargo build` commands, want 1", builds)
	}
	for _, need := range append([]string{"Cargo.toml", "Cargo.lock"}, members...) {
		if !coveredBy(need, copied) {
			c.fail("build stage does not COPY %s (cargo loads every workspace member)", need)
		}
	}

	if final.BaseName != runtimeImage {
		c.fail("final stage: FROM %s, want %s", final.BaseName, runtimeImage)
	}
	var user, entrypoint string
	uiCopied, binaryCopied := false, false
	for _, cmd := range final.Commands {
		switch cmd := cmd.(type) {
		case *instructions.UserCommand:
			user = cmd.User
		case *instructions.EntrypointCommand:
			if cmd.PrependShell {
				c.fail("final stage: ENTRYPOINT in shell form (distroless has no shell)")
			}
			entrypoint = strings.Join(cmd.CmdLine, " ")
		case *instructions.CopyCommand:
			if cmd.From == "ui" && cmd.DestPath == uiDir {
				uiCopied = true
			}
			if cmd.From == "build" && cmd.DestPath == "/agentauth" {
				binaryCopied = true
			}
		case *instructions.RunCommand:
			c.fail("final stage: RUN %s (distroless has no shell)", strings.Join(cmd.CmdLine, " "))
		}
	}
	if user != nonrootUser+":"+nonrootUser && user != nonrootUser {
		c.fail("final stage: USER %q, want %s (numeric, so runAsNonRoot can check it)", user, nonrootUser)
	}
	if entrypoint != "/agentauth" {
		c.fail("final stage: ENTRYPOINT %q, want [\"/agentauth\"]", entrypoint)
	}
	if !binaryCopied {
		c.fail("final stage: the binary is not copied from the build stage to /agentauth")
	}
	if !uiCopied {
		c.fail("final stage: the UI build is not copied from the ui stage to %s (the operator's --ui-dir)", uiDir)
	}
	uiBuilt := false
	for _, cmd := range ui.Commands {
		if run, ok := cmd.(*instructions.RunCommand); ok && strings.Contains(strings.Join(run.CmdLine, " "), "npm ci") {
			uiBuilt = true
		}
	}
	if !uiBuilt {
		c.fail("ui stage: no `npm ci` (the UI must build from package-lock.json)")
	}
}

// checkArgDefault checks a global ARG's default, the value an
// unparameterised build uses.
func checkArgDefault(c *checker, metaArgs []instructions.ArgCommand, name, want string) {
	for _, arg := range metaArgs {
		for _, kv := range arg.Args {
			if kv.Key != name {
				continue
			}
			got := "<none>"
			if kv.Value != nil {
				got = *kv.Value
			}
			if got != want {
				c.fail("ARG %s=%s, want %s (the workspace rust-version in Cargo.toml)", name, got, want)
			}
			return
		}
	}
	c.fail("no global ARG %s", name)
}

// coveredBy says whether path is copied itself or inside a copied folder.
func coveredBy(path string, copied map[string]bool) bool {
	for dir := path; dir != "." && dir != "/"; dir = filepath.Dir(dir) {
		if copied[dir] {
			return true
		}
	}
	return copied["."]
}

func stageNames(stages []instructions.Stage) []string {
	var names []string
	for _, s := range stages {
		names = append(names, s.Name)
	}
	return names
}

// checkDockerignore parses .dockerignore the way BuildKit does and checks
// which files it would send; returns the number of patterns.
func checkDockerignore(c *checker, root string, members []string) int {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		c.fail(".dockerignore: %v", err)
		return 0
	}
	defer f.Close()
	patterns, err := dockerignore.ReadAll(f)
	if err != nil {
		c.fail(".dockerignore: %v", err)
		return 0
	}
	matcher, err := patternmatcher.New(patterns)
	if err != nil {
		c.fail(".dockerignore: %v", err)
		return 0
	}
	ignored := func(path string) bool {
		excluded, err := matcher.MatchesOrParentMatches(path)
		return err == nil && excluded
	}
	keep := append([]string{"Cargo.toml", "Cargo.lock", "approval-ui/package.json",
		"approval-ui/package-lock.json", "approval-ui/src/main.tsx", "approval-ui/index.html"}, members...)
	for _, m := range members {
		keep = append(keep, m+"/Cargo.toml", m+"/src/lib.rs")
	}
	for _, path := range keep {
		if ignored(path) {
			c.fail(".dockerignore leaves out %s, which the build reads", path)
		}
	}
	drop := []string{".git/HEAD", "target/release/agentauth", "approval-ui/node_modules/react/index.js",
		"approval-ui/dist/index.html", "cli/target/x"}
	for _, path := range drop {
		if !ignored(path) {
			c.fail(".dockerignore sends %s (this machine's build output) into the build", path)
		}
	}
	if slices.Contains(patterns, "*") {
		c.fail(".dockerignore excludes everything")
	}
	return len(patterns)
}
