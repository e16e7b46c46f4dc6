"""A live one-node Slurm cluster on this machine, for the tests: munge, MariaDB, slurmdbd, slurmctld and slurmd.

What a real cluster has, on loopback only: authentication (munge), accounting (slurmdbd over its own MariaDB, which
`sacct` reads and Snakemake's Slurm executor polls), a controller and one node with this machine's CPUs and most of its
memory in one partition. Everything it writes lives in one scratch folder but the two configuration files, which
Slurm's commands read from their default place (`/etc/slurm/`): a job's own `srun` finds them there whatever its
environment. It starts only as root, with Debian's packages installed (`slurm-wlm`, `slurmdbd`, `munge`,
`mariadb-server`), and where no other Slurm configuration is in place; `unavailable()` says why not.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

CONF_DIR = Path("/etc/slurm")
MARK = "# written by invadv's tests/slurm.py: a one-node test cluster, removed when the tests end\n"
DAEMONS = {"munged": "munge", "mariadbd": "mariadb-server", "slurmdbd": "slurmdbd", "slurmctld": "slurm-wlm",
           "slurmd": "slurm-wlm", "sbatch": "slurm-client", "sacct": "slurm-client"}
CLUSTER = "invadv"
PARTITION = "debug"


def binary(name: str) -> str | None:
    """The path of a daemon or command (daemons live in /usr/sbin, which a user's PATH may lack)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def unavailable() -> str | None:
    """Why the cluster cannot start here, or None."""
    if os.geteuid() != 0:
        return "the one-node Slurm cluster needs root (it runs slurmd and writes /etc/slurm/)"
    missing = sorted({package for name, package in DAEMONS.items() if binary(name) is None})
    if missing:
        return f"Debian packages missing: {', '.join(missing)} (apt-get install {' '.join(missing)}; .ci/run does)"
    for name in ("slurm.conf", "slurmdbd.conf"):
        path = CONF_DIR / name
        if path.exists() and not path.read_text().startswith(MARK):
            return f"{path} belongs to another Slurm installation; the test cluster would replace it"
    return None


def free_port() -> int:
    """A TCP port nothing listens on at this moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, seconds: float = 60.0) -> None:
    """Poll `check()` until it is true, or fail naming `what`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test cluster: {what} did not come up within {seconds:.0f} s")
        time.sleep(0.5)


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def accepts(path: Path) -> bool:
    """Whether a process accepts connections on the Unix socket `path`."""
    with socket.socket(socket.AF_UNIX) as s:
        return s.connect_ex(str(path)) == 0


class OneNodeSlurm:
    """Start with `start()`, stop and clean up with `stop()`; `run(...)` runs a Slurm command against it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="invadv-slurm-"))
        self.node = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.memory_mb = int(memory_mb * 0.8)  # the rest for the daemons and the test's own processes
        self.ports = {name: free_port() for name in ("db", "dbd", "ctld", "d")}
        self.processes: list[subprocess.Popen] = []
        # munge's default socket: Slurm's persistent connections to slurmdbd authenticate there whatever AuthInfo says
        self.munge_socket = Path("/run/munge/munge.socket.2")

    # --- configuration ----------------------------------------------------------------------------------------

    def slurm_conf(self) -> str:
        r = self.root
        return MARK + f"""ClusterName={CLUSTER}
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={self.ports['ctld']}
SlurmdPort={self.ports['d']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={self.ports['dbd']}
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""

    def slurmdbd_conf(self) -> str:
        r = self.root
        return MARK + f"""AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.ports['dbd']}
SlurmUser=root
PidFile={r}/slurmdbd.pid
LogFile={r}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports['db']}
StorageUser=root
StorageLoc=slurm_acct_db
"""

    # --- lifecycle --------------------------------------------------------------------------------------------

    def daemon(self, *command: str, log: str) -> subprocess.Popen:
        """Start a daemon in the foreground of a child process, its output in the cluster's log folder."""
        with open(self.root / "log" / log, "ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def start(self) -> "OneNodeSlurm":
        r = self.root
        for folder in ("state", "spool", "log", "munge", "db"):
            (r / folder).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o700)
        self.munge_socket.parent.mkdir(parents=True, exist_ok=True)
        if self.munge_socket.exists() and not accepts(self.munge_socket):
            self.munge_socket.unlink()  # left by a munged that is gone
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.daemon(binary("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                    f"--key-file={key}", f"--pid-file={r}/munge/munged.pid", f"--seed-file={r}/munge/seed",
                    f"--log-file={r}/log/munged.log", log="munged.out")
        wait_for(self.munge_socket.exists, "munged")  # (a munged already serving it makes ours exit: both work)
        # MariaDB for slurmdbd: a private data folder, loopback only, no grant tables (nothing but slurmdbd reaches it)
        subprocess.run([shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db", "--no-defaults",
                        f"--datadir={r}/db", "--user=root", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True)
        self.daemon(binary("mariadbd"), "--no-defaults", f"--datadir={r}/db", "--user=root",
                    f"--socket={r}/mysqld.sock", f"--port={self.ports['db']}", "--bind-address=127.0.0.1",
                    f"--pid-file={r}/mysqld.pid", "--skip-grant-tables", "--skip-name-resolve", log="mariadbd.out")
        wait_for(lambda: listening(self.ports["db"]), "MariaDB")
        CONF_DIR.mkdir(parents=True, exist_ok=True)
        (CONF_DIR / "slurm.conf").write_text(self.slurm_conf())
        dbd = CONF_DIR / "slurmdbd.conf"
        dbd.write_text(self.slurmdbd_conf())
        os.chmod(dbd, 0o600)  # slurmdbd refuses a configuration others can read
        self.daemon(binary("slurmdbd"), "-D", log="slurmdbd.out")
        wait_for(lambda: listening(self.ports["dbd"]), "slurmdbd")
        self.run("sacctmgr", "-i", "add", "cluster", CLUSTER, check=False)  # slurmctld registers it too
        self.daemon(binary("slurmctld"), "-D", "-i", log="slurmctld.out")
        wait_for(lambda: listening(self.ports["ctld"]), "slurmctld")
        self.daemon(binary("slurmd"), "-D", "-N", self.node, log="slurmd.out")
        wait_for(lambda: "idle" in self.run("sinfo", "-h", "-o", "%T", check=False).stdout, "the node")
        return self

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm command (sbatch, sacct, scancel, ...) against this cluster."""
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)

    def logs(self) -> str:
        """The tail of every daemon's log, to explain a failure."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted((self.root / "log").glob("*")) if p.is_file())

    def stop(self) -> None:
        """Cancel every job, stop the daemons (the last started first), remove the configuration and the folder."""
        if binary("scancel"):
            subprocess.run(["scancel", "--full", "--quiet", f"--partition={PARTITION}"], capture_output=True)
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, 15)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
                    process.wait()
        for name in ("slurm.conf", "slurmdbd.conf"):
            path = CONF_DIR / name
            if path.exists() and path.read_text().startswith(MARK):
                path.unlink()
        if self.munge_socket.exists() and not accepts(self.munge_socket):
            self.munge_socket.unlink()
        shutil.rmtree(self.root, ignore_errors=True)
