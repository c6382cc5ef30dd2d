package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// problem is one finding about a file: the path of the value, and what is wrong with it.
type problem struct {
	at  path
	msg string
}

// String is `path: message`, or the message alone when it is about the whole file.
func (p problem) String() string {
	if len(p.at) == 0 {
		return p.msg
	}
	return p.at.String() + ": " + p.msg
}

// checkFile reads, parses, validates and cross-checks one bootstrap file.
func checkFile(file string) []problem {
	data, err := os.ReadFile(file)
	if err != nil {
		return []problem{{msg: "cannot read: " + err.Error()}}
	}
	bootstrap, problems := parseBootstrap(data)
	if bootstrap == nil {
		return problems
	}
	root := node{msg: bootstrap.ProtoReflect()}
	problems = append(problems, validateRules(root)...)
	problems = append(problems, deprecations(root)...)
	return append(problems, crossCheck(bootstrap, root)...)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: envoy-check FILE...\n\nValidates Envoy bootstrap YAML files against Envoy's v3 API ("+apiVersion()+").\nPrints FILE: path.to.field: problem per problem; exit 0 valid, 1 problems, 2 usage.")
		return 2
	}
	total, failed := 0, 0
	for _, file := range args {
		problems := checkFile(file)
		for _, p := range problems {
			fmt.Fprintf(stdout, "%s: %s\n", file, p)
		}
		total += len(problems)
		if len(problems) > 0 {
			failed++
		}
	}
	if total > 0 {
		fmt.Fprintf(stdout, "envoy-check: %s in %d of %s\n", counted(total, "problem"), failed, counted(len(args), "file"))
		return 1
	}
	fmt.Fprintf(stdout, "envoy-check: %s valid against Envoy's v3 API (%s)\n", counted(len(args), "file"), apiVersion())
	return 0
}

// counted is "1 file", "2 files".
func counted(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// apiVersion names the go-control-plane/envoy module the checker was built with.
func apiVersion() string {
	const module = "github.com/envoyproxy/go-control-plane/envoy"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == module {
				return "go-control-plane/envoy " + dep.Version
			}
		}
	}
	return "go-control-plane/envoy"
}
