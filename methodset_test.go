package meshdrive_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxMethods bounds the method set of every named type in the module
// (issue 20): a type that needs more is doing several jobs.
const maxMethods = 60

// TestMethodSets type-checks every non-test package of the module and
// fails for each named type whose method set (of *T, promoted methods
// included; of T for an interface) has more than maxMethods methods. The
// packages the module imports come from the compiler's export data (go
// list -export), not from source: checking modernc.org/sqlite from source
// would take a minute.
func TestMethodSets(t *testing.T) {
	pkgs, exports := listModule(t)
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	checked := 0
	for _, p := range pkgs {
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		conf := types.Config{Importer: imp}
		tp, err := conf.Check(p.ImportPath, fset, files, nil)
		if err != nil {
			t.Fatalf("type-check %s: %v", p.ImportPath, err)
		}
		for _, v := range overLimit(tp, maxMethods) {
			t.Errorf("%s has %d methods in its method set (at most %d): split it", v.name, v.n, maxMethods)
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("checked %d packages: go list found too few", checked)
	}
}

// TestOverLimit shows that the check finds a type over the limit,
// promoted methods counted.
func TestOverLimit(t *testing.T) {
	var src strings.Builder
	src.WriteString("package p\ntype inner struct{}\ntype Outer struct{ *inner }\ntype Small struct{}\nfunc (Small) A() {}\n")
	for i := range 40 {
		fmt.Fprintf(&src, "func (*inner) M%d() {}\n", i)
	}
	for i := range 21 {
		fmt.Fprintf(&src, "func (Outer) N%d() {}\n", i)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src.String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := (&types.Config{}).Check(module+"/p", fset, []*ast.File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := overLimit(p, maxMethods)
	if len(got) != 1 || got[0].name != module+"/p.Outer" || got[0].n != 61 {
		t.Fatalf("overLimit = %v, want only p.Outer with 61", got)
	}
}

type bigType struct {
	name string
	n    int
}

// overLimit returns the named types of p whose method set has more than
// max methods declared in the module, sorted by name. Methods promoted
// from another module's type are not counted: a go-fuse node must embed
// fs.Inode, whose methods are go-fuse's to split.
func overLimit(p *types.Package, max int) []bigType {
	var out []bigType
	scope := p.Scope()
	for _, name := range scope.Names() {
		tn, ok := scope.Lookup(name).(*types.TypeName)
		if !ok || tn.IsAlias() {
			continue
		}
		T := tn.Type()
		var ms *types.MethodSet
		if types.IsInterface(T) {
			ms = types.NewMethodSet(T)
		} else {
			ms = types.NewMethodSet(types.NewPointer(T))
		}
		n := 0
		for i := range ms.Len() {
			if inModule(ms.At(i).Obj().Pkg().Path()) {
				n++
			}
		}
		if n > max {
			out = append(out, bigType{p.Path() + "." + name, n})
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].name < out[k].name })
	return out
}

// module is the module's path.
const module = "github.com/meshdrive/meshdrive"

func inModule(path string) bool {
	return path == module || strings.HasPrefix(path, module+"/")
}

type listedPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Export     string
	DepOnly    bool
	Module     *struct{ Main bool }
}

// listModule returns the module's packages and the export data file of
// every package they import, from go list -export -deps.
func listModule(t *testing.T) ([]listedPackage, map[string]string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Dir,GoFiles,Export,DepOnly,Module", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []listedPackage
	exports := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Export != "" {
			exports[p.ImportPath] = p.Export
		}
		if !p.DepOnly && p.Module != nil && p.Module.Main && len(p.GoFiles) > 0 {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, exports
}
