#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for the tests (Debian slurm-wlm + munge, run as root, no systemd).
# Usage: cluster.sh start DIR   -> writes DIR/slurm.conf, starts munged (if none runs), slurmctld, slurmd
#        cluster.sh stop DIR    -> stops only the daemons this script started, by the pids it recorded
# Clients find the cluster through SLURM_CONF=DIR/slurm.conf; /etc/slurm/slurm.conf is linked to it as well
# (only if no other config is there), because the job-step plugin strips SLURM_* variables inside jobs.
set -euo pipefail
action=$1
dir=$(realpath -m "$2")
host=$(hostname -s)

stop_pidfile() {  # kill the process recorded in a pid file, never by name
  local f=$1
  [ -s "$f" ] || return 0
  local pid
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

case "$action" in
start)
  mkdir -p "$dir"/state "$dir"/spool "$dir"/log
  mkdir -p /run/munge /etc/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  if ! munge -n >/dev/null 2>&1; then
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid --force"
    cp /run/munge/munged.pid "$dir"/munged.pid
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  cat > "$dir"/slurm.conf <<CONF
ClusterName=mcradtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
# Keep finished jobs visible to `squeue -t all` for an hour: the test reads them back as evidence.
MinJobAge=3600
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
CONF
  # One declared GPU (no device file): enough for SLURM to schedule --gpus=1 jobs of profiles/slurm-gpu onto
  # the gpu partition; the job itself finds no CUDA and runs on the CPU.
  echo "NodeName=$host Name=gpu File=/dev/null" > "$dir"/gres.conf
  mkdir -p /etc/slurm
  if [ -L /etc/slurm/slurm.conf ] && [ ! -e /etc/slurm/slurm.conf ]; then rm /etc/slurm/slurm.conf; fi  # stale
  if [ ! -e /etc/slurm/slurm.conf ]; then
    ln -s "$dir"/slurm.conf /etc/slurm/slurm.conf
    echo /etc/slurm/slurm.conf > "$dir"/etc_link
  elif [ "$(readlink -f /etc/slurm/slurm.conf)" != "$dir/slurm.conf" ]; then
    echo "/etc/slurm/slurm.conf belongs to another SLURM setup; not touching it" >&2
    exit 1
  fi
  export SLURM_CONF="$dir"/slurm.conf
  /usr/sbin/slurmctld -f "$dir"/slurm.conf
  /usr/sbin/slurmd -f "$dir"/slurm.conf
  for _ in $(seq 100); do
    sinfo -h -o %T 2>/dev/null | grep -qE "^idle" && exit 0
    sleep 0.2
  done
  echo "SLURM did not come up; see $dir/log" >&2
  exit 1
  ;;
stop)
  stop_pidfile "$dir"/slurmd.pid
  stop_pidfile "$dir"/slurmctld.pid
  stop_pidfile "$dir"/munged.pid
  if [ -s "$dir"/etc_link ]; then rm -f "$(cat "$dir"/etc_link)" "$dir"/etc_link; fi
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
