/**
 * `outpost passwd`, modelled on mosquitto_passwd(1): the password comes from `-b`, from a prompt
 * on the terminal (typed twice, not echoed), or, when stdin is not a terminal, from its first line
 * so scripts can pipe it in.
 */
import { createInterface } from 'node:readline'
import type { PasswdCommand } from '../cli-args.js'
import { OutpostError } from '../errors.js'
import { updatePasswordFile } from './passwd.js'

/** Ctrl-C at the prompt: raw mode turns it into a byte instead of SIGINT. */
class Interrupted extends Error {}

/**
 * Asks each of `prompts` in turn on the terminal, with echo off, and returns the answers. Input
 * is read as one stream, so a pasted "pw\rpw\r" answers both prompts.
 */
function promptHidden(prompts: readonly string[]): Promise<string[]> {
  const stdin = process.stdin
  const answers: string[] = []
  let current = ''
  return new Promise<string[]>((resolve, reject) => {
    const finish = (err?: Error): void => {
      stdin.off('data', onData)
      stdin.setRawMode(false)
      stdin.pause()
      if (err === undefined) resolve(answers)
      else reject(err)
    }
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          process.stderr.write('\n')
          answers.push(current)
          current = ''
          if (answers.length === prompts.length) return finish()
          process.stderr.write(prompts[answers.length] ?? '')
        } else if (ch === '\u0003') {
          process.stderr.write('\n')
          return finish(new Interrupted())
        } else if (ch === '\u0004' && current === '') {
          process.stderr.write('\n')
          return finish(new OutpostError('OUTPOST_E_PASSWD', 'no password given (end of input at the prompt)'))
        } else if (ch === '\u007f' || ch === '\b') {
          current = [...current].slice(0, -1).join('')
        } else if (ch === '\u0015') {
          current = '' // Ctrl-U, as in a cooked terminal
        } else if (ch >= ' ') {
          current += ch
        }
      }
    }
    // Echo off before the prompt shows: whatever is typed (or pasted) after it must not appear.
    stdin.setEncoding('utf8')
    stdin.setRawMode(true)
    stdin.on('data', onData)
    stdin.resume()
    process.stderr.write(prompts[0] ?? '')
  })
}

/** The first line of a piped stdin, without its line end; rejects when stdin ends without one. */
function readLine(): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin, terminal: false })
    let done = false
    rl.once('line', (line) => {
      done = true
      rl.close()
      // Only one line is needed; stop reading so a writer that keeps the pipe open does not hold us.
      process.stdin.pause()
      resolve(line)
    })
    rl.once('close', () => {
      if (!done) reject(new OutpostError('OUTPOST_E_PASSWD', 'no password given: stdin is not a terminal and held no line; pipe one in or use -b'))
    })
  })
}

async function askPassword(): Promise<string> {
  let password: string
  if (process.stdin.isTTY) {
    const [first = '', second = ''] = await promptHidden(['Password: ', 'Reenter password: '])
    if (first !== second) throw new OutpostError('OUTPOST_E_PASSWD', 'the passwords do not match')
    password = first
  } else {
    password = await readLine()
  }
  if (password === '') throw new OutpostError('OUTPOST_E_PASSWD', 'the password must not be empty')
  return password
}

/** Runs `outpost passwd`; prints what changed and returns the exit status. */
export async function runPasswd(command: PasswdCommand, printError: (err: unknown) => void): Promise<number> {
  try {
    const { action } = command
    const change =
      action.kind === 'delete'
        ? await updatePasswordFile(command.file, command.user, undefined)
        : await updatePasswordFile(command.file, command.user, action.password ?? (await askPassword()), {
            create: action.create,
            ...(action.iterations === undefined ? {} : { iterations: action.iterations }),
          })
    const what = { created: 'created, with user', added: 'added user', changed: 'changed the password of', deleted: 'deleted user' }[change]
    process.stdout.write(`${command.file}: ${what} ${JSON.stringify(command.user)}\n`)
    return 0
  } catch (err) {
    if (err instanceof Interrupted) return 130
    printError(err)
    return 1
  }
}
