package main

import (
	"debug/buildinfo"
	"os"
	"runtime"
	"strings"
)

// machine describes where the numbers come from.
type machine struct {
	CPUs      int               `json:"nproc"`
	CPUModel  string            `json:"cpu_model"`
	Kernel    string            `json:"kernel"`
	GoVersion string            `json:"go_version"`
	Libraries map[string]string `json:"libraries"` // module path → version, as built into benchserver
}

// peerModules are the libraries whose versions the report names.
var peerModules = []string{
	"github.com/gorilla/websocket",
	"github.com/lxzan/gws",
	"github.com/lesismal/nbio",
	"github.com/gobwas/ws",
	"github.com/panjf2000/gnet/v2",
}

func readMachine(serverBin string) machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Libraries: map[string]string{}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if bi, err := buildinfo.ReadFile(serverBin); err == nil {
		m.GoVersion = bi.GoVersion
		for _, d := range bi.Deps {
			for _, p := range peerModules {
				if d.Path == p {
					m.Libraries[p] = d.Version
				}
			}
		}
	}
	return m
}
