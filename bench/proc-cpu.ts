// CPU time and memory of processes and CPU time of the whole machine, from Linux's /proc (empty or undefined
// elsewhere): what a benchmark's client process and its servers used during a timed run, and the CPU per
// operation, which depends much less on what else the machine is doing than ops/s does; and how much memory
// (resident set, now and at its peak) each server holds at a given moment.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { readFileSync, readdirSync } from 'node:fs';
import { round } from './stats.js';

export interface ProcessCpu {
  name: string;
  pid: number;
  cpuSeconds: number;
}

const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** The parent and the CPU seconds (user + system, every thread) a process used so far; undefined when it is gone. */
export function procStat(pid: number): { ppid: number; cpuSeconds: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // after "pid (comm) ": state ppid ... utime is field 14 overall, i.e. index 11 here; stime index 12
    return { ppid: Number(fields[1]), cpuSeconds: (Number(fields[11]) + Number(fields[12])) / clockTicks };
  } catch {
    return undefined;
  }
}

/** The pids whose parent is `parent`. */
export function childrenOf(parent: number): number[] {
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return [];
  }
  return pids.map(Number).filter((pid) => procStat(pid)?.ppid === parent);
}

/** A short name for a kv process: "kv up", "coordinator", "daemon :PORT" (from its command line). */
export function kvProcessName(pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    // node [node flags, e.g. --cpu-prof-dir DIR] …/kv.js <command> …: a flag's value is not the script
    const script = args.findIndex((arg, i) => i > 0 && /(^|\/)kv\.js$/.test(arg));
    const command = args[script + 1] ?? '?';
    if (command === 'daemon') return `daemon :${args[args.indexOf('--listen-port') + 1] ?? '?'}`;
    return command === 'up' ? 'kv up' : command;
  } catch {
    return '?';
  }
}

/** This process's CPU seconds so far (every thread: the event loop, libuv's pool, the GC). */
export const selfCpuSeconds = () => {
  const self = process.cpuUsage();
  return (self.user + self.system) / 1e6;
};

/** CPU seconds so far of each named process (one that is gone is left out). */
export function sampleProcesses(processes: ReadonlyArray<{ name: string; pid: number }>): ProcessCpu[] {
  const samples: ProcessCpu[] = [];
  for (const p of processes) {
    const stat = procStat(p.pid);
    if (stat) samples.push({ name: p.name, pid: p.pid, cpuSeconds: stat.cpuSeconds });
  }
  return samples;
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
export function machineJiffies(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number) as number[];
    const busy = user! + nice! + system! + irq! + softirq! + steal!;
    return { busy, total: busy + idle! + iowait! };
  } catch {
    return undefined;
  }
}

/** The machine's CPU between two samples, in % of one core (2 cores busy = 200%). */
export function machineBusyPercent(before: ReturnType<typeof machineJiffies>, after: ReturnType<typeof machineJiffies>): number | undefined {
  if (!before || !after || after.total <= before.total) return undefined;
  const share = (after.busy - before.busy) / (after.total - before.total);
  return round(share * 100 * os.cpus().length, 0);
}

/** What each process used between two samples: CPU seconds and % of one core over `seconds`. */
export function cpuDuring(before: ProcessCpu[], after: ProcessCpu[], seconds: number) {
  return after.map((a) => {
    const b = before.find((x) => x.pid === a.pid);
    const used = a.cpuSeconds - (b?.cpuSeconds ?? 0);
    return { name: a.name, pid: a.pid, cpuSeconds: round(used, 2), cpuPercent: round((100 * used) / seconds, 0) };
  });
}

// ---- memory ----

export interface ProcessMemory {
  name: string;
  pid: number;
  /** Resident set now (VmRSS), in bytes. */
  rssBytes: number;
  /** The resident set's peak so far (VmHWM), in bytes. */
  peakRssBytes: number;
  /** The resident set's anonymous part (heap, stacks: RssAnon) and file-backed part (mapped files and libraries: RssFile), in bytes. */
  rssAnonBytes: number;
  rssFileBytes: number;
}

/** The memory lines of /proc/PID/status (kB, i.e. KiB there), in bytes; undefined when the process is gone. */
export function procMemory(pid: number): Omit<ProcessMemory, 'name' | 'pid'> | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  };
  // a zombie (exited, not yet reaped) has no Vm* lines
  if (!/^VmRSS:/m.test(status)) return undefined;
  return { rssBytes: kib('VmRSS'), peakRssBytes: kib('VmHWM'), rssAnonBytes: kib('RssAnon'), rssFileBytes: kib('RssFile') };
}

/** The memory of each named process now (one that is gone is left out). */
export function sampleMemory(processes: ReadonlyArray<{ name: string; pid: number }>): ProcessMemory[] {
  const samples: ProcessMemory[] = [];
  for (const p of processes) {
    const memory = procMemory(p.pid);
    if (memory) samples.push({ name: p.name, pid: p.pid, ...memory });
  }
  return samples;
}
