import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  cliEnv,
  cliInTerminal,
  cliInTerminalReportingModes,
  reportedExit,
  runCli,
  type Terminal,
} from '../helpers/cli.js'
import { Sandbox } from '../sandbox/index.js'

let sandbox: Sandbox
let env: NodeJS.ProcessEnv
const terminals: Terminal[] = []

beforeAll(async () => {
  sandbox = await Sandbox.start()
  env = cliEnv(sandbox.kubeconfigPath, { TERM: 'xterm-256color' })
})
afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
})

function shellInTerminal(args: string[] = [], size = { cols: 100, rows: 30 }): Terminal {
  const terminal = cliInTerminal(['shell', ...args], env, size)
  terminals.push(terminal)
  return terminal
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

describe('akm-access shell in a terminal', () => {
  it('opens a login shell in /work: the prompt appears, typed input echoes, exit status comes back', async () => {
    const terminal = shellInTerminal()
    await terminal.waitFor(/\$ $/m)
    terminal.type('echo "in $(pwd) as $(id -un) on $(hostname)"\r')
    await terminal.waitFor(`in /work as akamas on ${sandbox.currentPodName}`)
    expect(terminal.output).toContain('echo "in $(pwd)') // the typed line was echoed by the remote terminal
    terminal.type('exit 7\r')
    expect(await terminal.exit()).toEqual({ code: 7, signal: null })
  })

  it('sends the terminal size before the first prompt and on every resize, and passes TERM', async () => {
    const terminal = shellInTerminal([], { cols: 91, rows: 27 })
    await terminal.waitFor(/\$ $/m)
    terminal.type('stty size; echo "term=$TERM"\r')
    await terminal.waitFor('27 91')
    await terminal.waitFor('term=xterm-256color')
    const mark = terminal.output.length
    terminal.resize(120, 40)
    await new Promise((resolve) => setTimeout(resolve, 200))
    terminal.type('stty size\r')
    await terminal.waitFor('40 120', { from: mark })
    terminal.type('exit\r')
    expect((await terminal.exit()).code).toBe(0)
  })

  it('interrupts a remote sleep with Ctrl-C, keeping the session', async () => {
    const terminal = shellInTerminal()
    await terminal.waitFor(/\$ $/m)
    terminal.type('sleep 30; echo slept\r')
    await new Promise((resolve) => setTimeout(resolve, 300))
    const mark = terminal.output.length
    terminal.type('\x03')
    terminal.type('echo "after $((6*7))"\r')
    await terminal.waitFor('after 42', { from: mark })
    expect(terminal.output.slice(mark)).not.toContain('slept')
    terminal.type('exit\r')
    expect((await terminal.exit()).code).toBe(0)
  })

  it('ends a session with ~. at the start of a line, exit 255', async () => {
    const terminal = shellInTerminal()
    await terminal.waitFor(/\$ $/m)
    terminal.type('\r~.')
    const result = await terminal.exit()
    expect(result.code).toBe(255)
    expect(terminal.output).toContain(`Connection to ${sandbox.currentPodName} closed.`)
  })

  it('restores the terminal and exits 255 when the connection drops', async () => {
    const wrapper = cliInTerminalReportingModes(['shell'], env)
    terminals.push(wrapper)
    await wrapper.waitFor(/\$ $/m)
    sandbox.streamFaults.dropAfterBytes = 1
    wrapper.type('echo trigger-output\r')
    await wrapper.waitFor('modes-done')
    expect(reportedExit(wrapper.output)).toEqual({ code: 255, restored: true })
    expect(wrapper.output).toMatch(/Error: the connection to the pod was lost/)
  })
})

describe('akm-access shell behind a load balancer that cuts idle connections', () => {
  // Time-compressed: the sandbox cuts connections idle for 1.5 s (a load balancer's 60 s), the session stays idle
  // for 4 s, and keepalives go every 0.5 s (20 s by default against 60 s).
  it('keeps an idle session alive with keepalives', async () => {
    sandbox.streamFaults.idleTimeoutMs = 1500
    const terminal = shellInTerminal(['--keepalive', '500ms'])
    await terminal.waitFor(/\$ $/m)
    await new Promise((resolve) => setTimeout(resolve, 4000))
    terminal.type('echo "still $((20+22))"\r')
    await terminal.waitFor('still 42')
    terminal.type('exit\r')
    expect((await terminal.exit()).code).toBe(0)
  })

  it('loses the same idle session without them (the cut is real), with 255', async () => {
    sandbox.streamFaults.idleTimeoutMs = 1500
    const terminal = shellInTerminal(['--keepalive', '0'])
    await terminal.waitFor(/\$ $/m)
    expect((await terminal.exit(10_000)).code).toBe(255)
    expect(terminal.output).toMatch(/Error: the connection to the pod was lost/)
  })
})

describe('akm-access shell -- CMD on pipes', () => {
  it('passes arguments exactly, without a remote shell re-parsing them', async () => {
    const args = ['a b', '$HOME', '*', "it's", '"q"', '--', '-n']
    const result = await runCli(['shell', '--', 'printf', '[%s]\\n', ...args], { env })
    expect(result.stdout).toBe(args.map((arg) => `[${arg}]\n`).join(''))
    expect(result.code).toBe(0)
  })

  it('returns the remote exit status and keeps stdout and stderr apart', async () => {
    const result = await runCli(['shell', '--', 'sh', '-c', 'echo out; echo err >&2; exit 9'], { env })
    expect(result).toMatchObject({ code: 9, stdout: 'out\n', stderr: 'err\n' })
  })

  it('pipes 10 MiB of binary data in and out byte for byte, with end of input reaching the command', async () => {
    const data = randomBytes(10 * 1024 * 1024)
    const upload = await runCli(['shell', '--', 'sh', '-c', 'cat > /work/blob.bin; sha256sum /work/blob.bin'], {
      env,
      input: data,
      timeoutMs: 60_000,
    })
    expect(upload.code).toBe(0)
    expect(upload.stdout.split(' ')[0]).toBe(sha256(data))
    expect(sha256(sandbox.readWorkFile('blob.bin'))).toBe(sha256(data))
    const download = await runCli(['shell', '--', 'cat', '/work/blob.bin'], { env, timeoutMs: 60_000 })
    expect(download.code).toBe(0)
    expect(download.stdoutBuffer.length).toBe(data.length)
    expect(sha256(download.stdoutBuffer)).toBe(sha256(data))
  })

  it('runs relative to /work', async () => {
    writeFileSync(join(sandbox.workDir, 'note.txt'), 'from the host\n')
    const result = await runCli(['shell', '--', 'cat', 'note.txt'], { env })
    expect(result.stdout).toBe('from the host\n')
  })

  it('fails with 255 and a message when the connection drops, never 0', async () => {
    sandbox.streamFaults.dropAfterBytes = 1000
    const result = await runCli(['shell', '--', 'sh', '-c', 'head -c 100000 /dev/zero; sleep 5'], { env })
    expect(result.code).toBe(255)
    expect(result.stderr).toMatch(/Error: the connection to the pod was lost/)
  })
})
