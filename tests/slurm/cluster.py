"""A throw-away single-node SLURM cluster for bazaar's tests.

Brings up munged, slurmctld and slurmd by hand (no systemd) in a private
folder, with a minimal slurm.conf for this host, and stops every process it
started by PID. It never touches /etc/slurm, /etc/munge or a system munged.

    with SlurmCluster(workdir) as c:      # raises ClusterUnavailable(reason)
        jobid = c.sbatch(["script.sbatch", "arg"])
        c.wait_for_job_end(jobid, timeout_s=300)

Also usable by hand for poking at the sbatch script:

    python3 tests/slurm/cluster.py up /tmp/bzslurm   # prints the SLURM_CONF to
                                                     # export; Ctrl-C stops it
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "srun", "sinfo")


class ClusterUnavailable(Exception):
    """This machine cannot run a SLURM cluster; the message says why."""


def _find(prog):
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        p = os.path.join(d, prog)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(prog)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _become_subreaper():
    """Orphans of our daemons (slurmstepd double-forks) re-parent to us, so
    they can be found and stopped by PID when the cluster goes down."""
    PR_SET_CHILD_SUBREAPER = 36
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


def _children_of(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # field 4 is the ppid; the command (field 2) may hold spaces
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(name))
    return out


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return stat[stat.rfind(")") + 2:].split()[0] == "Z"
    except OSError:
        return False


def _memory_mb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 1024


class SlurmCluster:
    """munged + slurmctld + slurmd on this host, configured under workdir."""

    def __init__(self, workdir, cpus=None, log=print):
        self.dir = os.path.abspath(workdir)
        self.cpus = max(2, cpus or os.cpu_count() or 1)
        self.log = log
        self.procs = {}          # name -> Popen
        self.node = "bznode"
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.munge_socket = os.path.join(self.dir, "munge", "munge.socket")
        self.subreaper = False

    # ------------------------------------------------------------ bring-up
    def check_machine(self):
        """Raise ClusterUnavailable when daemons cannot run here at all."""
        if os.geteuid() != 0:
            raise ClusterUnavailable("not root: slurmd must run as root to "
                                     "launch jobs (run the tests as root)")
        missing = [p for p in DAEMONS + CLIENTS if not _find(p)]
        if missing:
            raise ClusterUnavailable(
                "SLURM/munge not installed (missing: %s); install with "
                "`apt-get install -y slurm-wlm munge`" % " ".join(missing))

    def _write_config(self):
        d = self.dir
        for sub in ("munge", "state", "spool", "log", "jobs"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.chmod(d, 0o755)
        os.chmod(os.path.join(d, "munge"), 0o700)
        key = os.path.join(d, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        hostname = socket.gethostname().split(".")[0] or "localhost"
        try:
            socket.gethostbyname(hostname)
            self.host_resolves = True
        except OSError:
            self.host_resolves = False
        self.hostname = hostname
        self.ctld_port = _free_port()
        self.slurmd_port = _free_port()
        while self.slurmd_port == self.ctld_port:
            self.slurmd_port = _free_port()
        mem = max(256, int(_memory_mb() * 0.8))
        plugstack = os.path.join(d, "plugstack.conf")
        with open(plugstack, "w") as f:
            f.write("# empty: no SPANK plugins\n")
        # The node is named bznode and addressed by 127.0.0.1 so nothing here
        # depends on the host name resolving; slurmd is told its name by -N.
        # cred_expire=10: a requeued job becomes eligible cred_expire+1 s
        # after the requeue (default 120 s), which would dominate the test.
        # sched_interval=2 and the 30 s time-limit/signal sweep of slurmctld
        # (fixed) set the rest of the test's pace.
        conf = f"""# generated by tests/slurm/cluster.py
ClusterName=bztest
SlurmctldHost={hostname}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket},cred_expire=10
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={plugstack}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
OverTimeLimit=0
MessageTimeout=20
SlurmctldTimeout=30
SlurmdTimeout=60
BatchStartTimeout=30
NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={hostname} CPUs={self.cpus} Boards=1 SocketsPerBoard=1 CoresPerSocket={self.cpus} ThreadsPerCore=1 RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""
        with open(self.conf, "w") as f:
            f.write(conf + "\n")

    def env(self, extra=None):
        """Environment for SLURM clients talking to this cluster."""
        e = dict(os.environ)
        e["SLURM_CONF"] = self.conf
        for k in list(e):
            # a surrounding allocation must not leak into ours
            if k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")) \
                    and k != "SLURM_CONF":
                del e[k]
        if extra:
            e.update(extra)
        return e

    def _spawn(self, name, argv):
        logf = open(os.path.join(self.dir, "log", name + ".out"), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=subprocess.STDOUT, env=self.env(),
                             cwd=self.dir)
        logf.close()
        self.procs[name] = p
        return p

    def _tail(self, name, n=15):
        out = []
        for f in (name + ".out", name + ".log"):
            p = os.path.join(self.dir, "log", f)
            if os.path.exists(p):
                with open(p, errors="replace") as fh:
                    out += fh.read().splitlines()[-n:]
        return "\n".join(out)

    def _wait_for(self, what, pred, timeout_s, proc_name=None):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if pred():
                return
            if proc_name and self.procs[proc_name].poll() is not None:
                raise ClusterUnavailable(
                    "%s exited with code %s while waiting for %s:\n%s" % (
                        proc_name, self.procs[proc_name].returncode, what,
                        self._tail(proc_name)))
            time.sleep(0.3)
        raise ClusterUnavailable("timed out after %ds waiting for %s:\n%s" % (
            timeout_s, what, self._tail(proc_name or "slurmctld")))

    def start(self, timeout_s=60):
        """Start munged, slurmctld and slurmd; wait until the node is idle.
        Raises ClusterUnavailable (daemons stopped again) on any failure."""
        self.check_machine()
        os.makedirs(self.dir, exist_ok=True)
        self.subreaper = _become_subreaper()
        self._write_config()
        try:
            self._spawn("munged", [
                _find("munged"), "-F", "--force",
                "--key-file", os.path.join(self.dir, "munge", "munge.key"),
                "--socket", self.munge_socket,
                "--pid-file", os.path.join(self.dir, "munge", "munged.pid"),
                "--seed-file", os.path.join(self.dir, "munge", "munged.seed"),
                "--log-file", os.path.join(self.dir, "log", "munged.log")])
            self._wait_for("the munge socket",
                           lambda: os.path.exists(self.munge_socket), 15,
                           "munged")
            r = subprocess.run(
                [_find("munge"), "-n", "-S", self.munge_socket],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE) \
                if _find("munge") else None
            if r is not None and r.returncode != 0:
                raise ClusterUnavailable("munge does not answer: %s" %
                                         r.stderr.decode(errors="replace"))
            self._spawn("slurmctld", [_find("slurmctld"), "-D", "-c", "-i",
                                      "-f", self.conf])
            self._wait_for("slurmctld to answer", self._ctld_up, timeout_s,
                           "slurmctld")
            self._spawn("slurmd", [_find("slurmd"), "-D", "-N", self.node,
                                   "-f", self.conf])
            self._wait_for("node %s to be idle" % self.node, self._node_idle,
                           timeout_s, "slurmd")
        except BaseException:
            self.stop()
            raise
        return self

    def _ctld_up(self):
        r = self.run(["scontrol", "ping"], check=False)
        return r.returncode == 0 and "UP" in r.stdout

    def _node_idle(self):
        r = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
        return r.returncode == 0 and r.stdout.strip().startswith("idle")

    # ----------------------------------------------------------- clients
    def run(self, argv, check=True, env=None, timeout=60):
        argv = [_find(argv[0]) or argv[0]] + list(argv[1:])
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env=self.env(env), timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (
                " ".join(argv), r.returncode, r.stderr.strip()))
        return r

    def sbatch(self, args, env=None, cwd=None):
        """Submit; returns the job id (int)."""
        argv = [_find("sbatch"), "--parsable"] + list(args)
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env=self.env(env), cwd=cwd, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("sbatch failed (%d): %s" % (r.returncode,
                                                          r.stderr.strip()))
        return int(r.stdout.strip().split(";")[0])

    def job(self, jobid):
        """`scontrol show job` as a dict (empty when unknown)."""
        r = self.run(["scontrol", "-o", "show", "job", str(jobid)],
                     check=False)
        if r.returncode != 0:
            return {}
        info = {}
        for tok in r.stdout.strip().split(" "):
            if "=" in tok:
                k, v = tok.split("=", 1)
                info.setdefault(k, v)
        return info

    def reap(self):
        """Collect exit statuses of re-parented orphans (no zombies)."""
        if not self.subreaper:
            return
        mine = {p.pid for p in self.procs.values()}
        for pid in _children_of(os.getpid()):
            if pid not in mine and _is_zombie(pid):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def wait_for_job_end(self, jobid, timeout_s, on_poll=None):
        """Poll until the job reaches a final state; returns the last
        `scontrol show job` dict. Raises TimeoutError."""
        final = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                 "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED")
        t0 = time.monotonic()
        info = {}
        while time.monotonic() - t0 < timeout_s:
            self.reap()
            info = self.job(jobid)
            if on_poll:
                on_poll(info)
            if info.get("JobState") in final:
                return info
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError("%s died (code %s):\n%s" % (
                        name, p.returncode, self._tail(name)))
            time.sleep(1)
        raise TimeoutError("job %s not finished after %ds; last state %s" % (
            jobid, timeout_s, info.get("JobState")))

    # ------------------------------------------------------------ tear-down
    def _stop_pid(self, pid, name, timeout_s=10):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    return
            except ChildProcessError:
                # not our child: poll for existence
                if not os.path.exists(f"/proc/{pid}") or _is_zombie(pid):
                    return
            time.sleep(0.1)
        self.log("cluster: %s (pid %d) ignored SIGTERM; SIGKILL" % (name, pid))
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def stop(self):
        """Cancel jobs, stop slurmd, slurmctld, munged and any orphan they
        left (slurmstepd, job tasks) -- each by PID. Safe to call twice."""
        if self.procs.get("slurmctld") and \
                self.procs["slurmctld"].poll() is None:
            self.run(["scancel", "--full", "--user=root"], check=False)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 20:
                r = self.run(["squeue", "-h"], check=False)
                if r.returncode != 0 or not r.stdout.strip():
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                self._stop_pid(p.pid, name)
                p.poll()
        if self.subreaper:
            mine = {p.pid for p in self.procs.values()}
            for _ in range(3):
                orphans = [pid for pid in _children_of(os.getpid())
                           if pid not in mine and self._is_cluster_orphan(pid)]
                if not orphans:
                    break
                for pid in orphans:
                    self._stop_pid(pid, "orphan")

    def _is_cluster_orphan(self, pid):
        """A child we did not spawn through subprocess: re-parented to us."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        if _is_zombie(pid):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            return False
        # pytest's own helpers are not re-parented; anything else is ours
        self.log("cluster: stopping orphan %d (%s)" % (pid, cmd.strip()))
        return True

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _main(argv):
    if len(argv) != 3 or argv[1] != "up":
        print(__doc__)
        return 2
    c = SlurmCluster(argv[2])
    try:
        c.start()
    except ClusterUnavailable as e:
        print("cluster unavailable:", e)
        return 1
    print("export SLURM_CONF=%s" % c.conf, flush=True)

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        while all(p.poll() is None for p in c.procs.values()):
            c.reap()
            time.sleep(1)
        print("a daemon died")
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
