import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** Memory and CPU of another process, read from Linux procfs. */

export interface MemorySample {
  /** Resident set size now, in KiB. */
  readonly rssKb: number;
  /** Peak resident set size since the process started (VmHWM), in KiB. */
  readonly hwmKb: number;
  /**
   * The anonymous (heap, stacks) and file-backed (mapped binaries and data files) parts of the
   * RSS, in KiB; undefined on kernels before 4.5.
   */
  readonly rssAnonKb?: number;
  readonly rssFileKb?: number;
}

function statusField(status: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (match?.[1] === undefined) throw new Error(`no ${name} in /proc status`);
  return Number(match[1]);
}

export async function readMemory(pid: number): Promise<MemorySample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const sample = { rssKb: statusField(status, 'VmRSS'), hwmKb: statusField(status, 'VmHWM') };
  if (!/^RssAnon:/m.test(status)) return sample;
  return { ...sample, rssAnonKb: statusField(status, 'RssAnon'), rssFileKb: statusField(status, 'RssFile') };
}

/** utime + stime of every thread of the process, in clock ticks. */
export async function readCpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses; fields resume after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, i.e. 11 and 12 after the name.
  return Number(fields[11]) + Number(fields[12]);
}

/** CPU ticks spent by everything on the machine (all cores), busy or not, from /proc/stat. */
export interface SystemTicks {
  /** user + nice + system + irq + softirq + steal: time some process (or the hypervisor) had. */
  readonly busy: number;
  readonly total: number;
}

export async function readSystemTicks(): Promise<SystemTicks> {
  const stat = await readFile('/proc/stat', 'utf8');
  const line = stat.slice(0, stat.indexOf('\n'));
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

let ticksPerSecond: number | undefined;

/** USER_HZ: the unit of /proc/PID/stat times. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const parsed = Number(out.stdout?.trim());
    ticksPerSecond = Number.isInteger(parsed) && parsed > 0 ? parsed : 100;
  }
  return ticksPerSecond;
}

/** Tracks the highest VmRSS seen by sampling, alongside the kernel's own VmHWM. */
export class PeakRssSampler {
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  #peakKb = 0;

  constructor(pid: number, intervalMs: number) {
    this.#pid = pid;
    this.#timer = setInterval(() => void this.sample(), intervalMs);
    this.#timer.unref();
  }

  async sample(): Promise<void> {
    try {
      const mem = await readMemory(this.#pid);
      this.#peakKb = Math.max(this.#peakKb, mem.rssKb, mem.hwmKb);
    } catch {
      // The process has exited; the peak so far stands.
    }
  }

  /** Takes a last sample and stops. */
  async stop(): Promise<number> {
    clearInterval(this.#timer);
    await this.sample();
    return this.#peakKb;
  }
}
