import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, runCli } from '../helpers/cli.js'
import { Sandbox } from '../sandbox/index.js'

// An API server older than 1.30 offers exec protocol v4 only, which has no way to tell the remote command that
// stdin ended (kubernetes#89899). akm-access must still work there, and say plainly what it cannot do.
let sandbox: Sandbox
let env: NodeJS.ProcessEnv

beforeAll(async () => {
  sandbox = await Sandbox.start({ execProtocols: 'v4-only', serverVersion: 'v1.29.6' })
  env = cliEnv(sandbox.kubeconfigPath)
})
afterAll(async () => {
  await sandbox?.stop()
})

describe('akm-access shell against an API server that speaks exec v4 only', () => {
  it('runs commands with their exit status over v4', async () => {
    const result = await runCli(['shell', '--debug', '--', 'sh', '-c', 'echo out; echo err >&2; exit 5'], { env })
    expect(result.code).toBe(5)
    expect(result.stdout).toBe('out\n')
    expect(result.stderr).toContain('err\n')
    expect(result.stderr).toContain('negotiated v4.channel.k8s.io')
  })

  it('says that the end of input cannot reach the remote command, and still delivers the output', async () => {
    // head exits after 4 bytes, so the command ends without needing the end of input.
    const result = await runCli(['shell', '--', 'head', '-c', '4'], { env, input: 'abcdefgh' })
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('abcd')
    expect(result.stderr).toMatch(/exec protocol v4, which cannot pass the end of input/)
  })
})
