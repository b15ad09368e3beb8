package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// Process is a child process started by the harness in its own process
// group, with stdout and stderr in one log file. Methods are safe for
// concurrent use.
type Process struct {
	// Name identifies the process in errors and names its log file.
	Name string
	// LogPath is the file holding the process' stdout and stderr.
	LogPath string

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error         // set before done is closed
	stopMu  sync.Mutex
}

// StartProcess starts binary with args and env (nil: no variables) in its
// own process group, logging stdout and stderr to <logsDir>/<name>.log
// (appended). The child gets SIGKILL if the harness dies, so a crashed or
// timed-out test run leaves no orphans behind. The caller owns the Process
// and must Stop it. Scenarios use it for the adapter, Prometheus and
// sample-app processes.
func StartProcess(logsDir, name, binary string, args []string, env []string) (*Process, error) {
	logPath := filepath.Join(logsDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", name, err)
	}
	fmt.Fprintf(logFile, "# %s %s\n", binary, strings.Join(args, " "))
	cmd := exec.Command(binary, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id, which is also its process group id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.done }

// ExitErr reports whether the process has exited, and if so, with what
// (nil for a clean exit), including the tail of its log.
func (p *Process) ExitErr() (exited bool, err error) {
	select {
	case <-p.done:
	default:
		return false, nil
	}
	if p.waitErr == nil {
		return true, fmt.Errorf("%s exited (status 0); log %s:\n%s", p.Name, p.LogPath, p.LogTail(20))
	}
	return true, fmt.Errorf("%s exited: %w; log %s:\n%s", p.Name, p.waitErr, p.LogPath, p.LogTail(20))
}

// Signal sends sig to the process alone (not its group), e.g. SIGTERM to
// watch a graceful shutdown; use Stop to end it for good.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s (pid %d): %w", p.Name, p.PID(), err)
	}
	return nil
}

// ExitCode reports whether the process has exited and, if so, its exit
// status (-1 when it was killed by a signal).
func (p *Process) ExitCode() (exited bool, code int) {
	select {
	case <-p.done:
	default:
		return false, 0
	}
	return true, p.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM to the process group, waits up to a few seconds, then
// sends SIGKILL, and waits for the process to be reaped. It is idempotent.
func (p *Process) Stop() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	select {
	case <-p.done:
		return nil
	default:
	}
	pgid := p.PID()
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (pid %d): SIGTERM: %w", p.Name, pgid, err)
	}
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop %s (pid %d): SIGKILL: %w", p.Name, pgid, err)
		}
		<-p.done
	}
	// The leader is reaped; make sure nothing else of its group survives.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (pid %d): kill remaining group: %w", p.Name, pgid, err)
	}
	return nil
}

// LogTail returns the last n lines of the process' log.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RSSBytes is the resident set size of the process (VmRSS), read from
// /proc/<pid>/status.
func (p *Process) RSSBytes() (uint64, error) {
	return statusBytes(p.PID(), "VmRSS")
}

// StatusBytes is a memory field of /proc/<pid>/status in bytes: VmHWM
// (the peak resident set size), RssAnon (heap and stacks), RssFile (the
// binary's mapped pages), ...
func (p *Process) StatusBytes(field string) (uint64, error) {
	return statusBytes(p.PID(), field)
}

// statusBytes reads the kB field of /proc/<pid>/status, in bytes.
func statusBytes(pid int, field string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("read %s of pid %d: %w", field, pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == field+":" && fields[2] == "kB" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read %s of pid %d: %w", field, pid, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("read %s of pid %d: no %s line", field, pid, field)
}

// ProcessGroupAlive reports whether any process of the process group pgid
// still exists (zombies included).
func ProcessGroupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// processSet is an ordered set of started processes, stopped in reverse
// order of start.
type processSet struct {
	mu    sync.Mutex
	procs []*Process
}

func (s *processSet) add(p *Process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = append(s.procs, p)
}

func (s *processSet) list() []*Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Process(nil), s.procs...)
}

// firstExited returns an error for the first process that has exited.
func (s *processSet) firstExited() error {
	for _, p := range s.list() {
		if exited, err := p.ExitErr(); exited {
			return err
		}
	}
	return nil
}

// stopAll stops every process, last started first, and joins the errors.
func (s *processSet) stopAll() error {
	procs := s.list()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
