import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Remembers every child process and temp directory the bench creates, so that an error, a
 * Ctrl-C or a normal exit leaves no broker running and no config or data dir behind.
 */
export class Janitor {
  readonly #children = new Set<ChildProcess>();
  readonly #dirs = new Set<string>();

  track(child: ChildProcess): void {
    if (hasExited(child)) return;
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
  }

  trackDir(dir: string): void {
    this.#dirs.add(dir);
  }

  async removeDir(dir: string): Promise<void> {
    this.#dirs.delete(dir);
    await rm(dir, { recursive: true, force: true });
  }

  /** SIGTERM every child, SIGKILL what is still there after `graceMs`, delete temp dirs. */
  async cleanup(graceMs: number): Promise<void> {
    await Promise.all([...this.#children].map((child) => stopChild(child, graceMs)));
    await Promise.all([...this.#dirs].map((dir) => this.removeDir(dir)));
  }

  /** For `process.on('exit')`, where nothing asynchronous runs any more. */
  cleanupSync(): void {
    for (const child of this.#children) child.kill('SIGKILL');
    this.#children.clear();
    for (const dir of this.#dirs) rmSync(dir, { recursive: true, force: true });
    this.#dirs.clear();
  }
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Asks a child to stop, then insists. Resolves once it has exited. */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (hasExited(child) || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timeout = new AbortController();
  const inTime = await Promise.race([
    exited.then(() => true),
    sleep(graceMs, false, { signal: timeout.signal }).catch(() => true),
  ]);
  timeout.abort();
  if (!inTime && !hasExited(child)) {
    child.kill('SIGKILL');
    await exited;
  }
}
