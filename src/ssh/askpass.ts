/**
 * The askpass hook for the master ssh connection of password installations. OpenSSH runs the program named by
 * SSH_ASKPASS (with SSH_ASKPASS_REQUIRE=force) and reads the password from its stdout. The program holds no secret:
 * it asks the akm-access process that started ssh, over a Unix socket in a private (0700) folder, presenting a
 * one-time token from its environment. That process answers a password prompt once and nothing else (a host key
 * question gets no answer, so ssh says no). The password never touches a file, an argv or an environment.
 */
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { join } from 'node:path'

export const askpassSocketVariable = 'AKM_ACCESS_ASKPASS_SOCKET'
export const askpassTokenVariable = 'AKM_ACCESS_ASKPASS_TOKEN'

export interface AskpassServer {
  /** Variables for ssh's environment (besides SSH_ASKPASS and SSH_ASKPASS_REQUIRE). */
  env: Record<string, string>
  /** How many password prompts were answered. */
  readonly answered: number
  close(): void
}

/** Prompts that ask for the account's password (OpenSSH's own, or a keyboard-interactive "Password:"). */
export function isPasswordPrompt(prompt: string): boolean {
  return /password/i.test(prompt) && !/passphrase|continue connecting|fingerprint/i.test(prompt)
}

/** Serves `password` to at most `maxAnswers` askpass requests that carry the token. */
export async function serveAskpass(dir: string, password: string, maxAnswers = 1): Promise<AskpassServer> {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  chmodSync(dir, 0o700)
  const socketPath = join(dir, `askpass-${randomBytes(6).toString('hex')}`)
  const token = randomBytes(24).toString('base64url')
  let answered = 0
  const server = createServer((socket) => {
    let request = ''
    socket.setEncoding('utf8')
    socket.on('error', () => {})
    socket.on('data', (chunk: string) => {
      request += chunk
      if (request.length > 4096) return void socket.destroy()
      const newline = request.indexOf('\n')
      if (newline < 0) return
      let parsed: { token?: unknown; prompt?: unknown } = {}
      try {
        parsed = JSON.parse(request.slice(0, newline)) as typeof parsed
      } catch {}
      const ok =
        parsed.token === token &&
        typeof parsed.prompt === 'string' &&
        isPasswordPrompt(parsed.prompt) &&
        answered < maxAnswers
      if (ok) answered++
      socket.end(ok ? `${password}\n` : '')
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, () => resolve())
  })
  chmodSync(socketPath, 0o600)
  return {
    env: { [askpassSocketVariable]: socketPath, [askpassTokenVariable]: token },
    get answered() {
      return answered
    },
    close() {
      server.close()
      rmSync(socketPath, { force: true })
    },
  }
}

/** The askpass side: the answer to `prompt`, or undefined when there is none (ssh then treats it as "no"). */
export function requestAnswer(env: NodeJS.ProcessEnv, prompt: string): Promise<string | undefined> {
  const socketPath = env[askpassSocketVariable]
  const token = env[askpassTokenVariable]
  if (!socketPath || !token) return Promise.resolve(undefined)
  return new Promise((resolve) => {
    let answer = ''
    const socket = createConnection(socketPath, () => {
      socket.write(`${JSON.stringify({ token, prompt })}\n`)
    })
    socket.setEncoding('utf8')
    socket.setTimeout(10_000, () => socket.destroy())
    socket.on('data', (chunk: string) => {
      answer += chunk
    })
    socket.on('error', () => resolve(undefined))
    socket.on('close', () => resolve(answer === '' ? undefined : answer))
  })
}
