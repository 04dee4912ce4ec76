import type { EventEmitter } from 'node:events'

/**
 * Resolves when `check` returns a value other than undefined, re-checked on every `event`;
 * rejects on timeout or when `check` throws.
 */
export function waitOn<T>(emitter: EventEmitter, event: string, check: () => T | undefined, timeoutMs: number, what: string | (() => string)): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      emitter.off(event, onEvent)
    }
    const onEvent = (): void => {
      let value: T | undefined
      try {
        value = check()
      } catch (err) {
        done()
        reject(err instanceof Error ? err : new Error(String(err)))
        return
      }
      if (value === undefined) return
      done()
      resolve(value)
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`))
    }, timeoutMs)
    emitter.on(event, onEvent)
    onEvent()
  })
}
