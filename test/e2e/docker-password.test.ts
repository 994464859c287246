/**
 * The docker-compose installation's credentials: CUSTOM_PASSWORD from the container's configuration, else the
 * password the image generated into /work/akamas_password; ALLOW_PASSWORD=false (password login disabled): the
 * password is still printed, with a warning, and ssh says what to do instead (--identity-file), which works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliEnv, runCli } from '../helpers/cli.js'
import { expectCliError } from '../helpers/expect-cli.js'
import { DockerSandbox } from '../sandbox/docker/index.js'

const sandboxes: DockerSandbox[] = []
afterAll(async () => {
  await Promise.all(sandboxes.map((sandbox) => sandbox.stop()))
})

async function start(options: Parameters<typeof DockerSandbox.start>[0]) {
  const sandbox = await DockerSandbox.start(options)
  sandboxes.push(sandbox)
  return { sandbox, env: cliEnv(undefined, sandbox.dockerEnv()) }
}

describe('CUSTOM_PASSWORD', () => {
  let sandbox: DockerSandbox
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    ;({ sandbox, env } = await start({ customPassword: 'Custom-Pass-42' }))
  })

  it('prints it, from the container’s configuration, and --json says where it came from', async () => {
    const result = await runCli(['password', '--docker'], { env })
    expect(result).toMatchObject({ code: 0, stdout: 'Custom-Pass-42\n', stderr: '' })
    const json = await runCli(['password', '--docker', '--json'], { env })
    expect(JSON.parse(json.stdout)).toEqual({
      password: 'Custom-Pass-42',
      source: 'CUSTOM_PASSWORD of container management-container',
      passwordLogin: true,
    })
    // No exec was needed: the configuration is enough.
    expect(sandbox.requests.some((r) => r.path.endsWith('/exec'))).toBe(false)
  })

  it('reads it while the container is stopped', async () => {
    await sandbox.stopContainer()
    try {
      const result = await runCli(['password', '--docker'], { env })
      expect(result).toMatchObject({ code: 0, stdout: 'Custom-Pass-42\n' })
    } finally {
      await sandbox.startContainer()
    }
  })

  it('has no key to print (exit 12)', async () => {
    const result = await runCli(['password', '--docker', '--key'], { env })
    expectCliError(result, { code: 12, message: 'has no SSH key', hint: 'without --key' })
  })
})

describe('the generated password', () => {
  let sandbox: DockerSandbox
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    ;({ sandbox, env } = await start({}))
  })

  it('comes from /work/akamas_password in the container', async () => {
    const result = await runCli(['password', '--docker', '--json'], { env })
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual({
      password: sandbox.password,
      source: 'file /work/akamas_password in container management-container',
      passwordLogin: true,
    })
    expect(sandbox.password).toMatch(/^\S{12,}$/)
    // ssh logs in with it.
    const ssh = await runCli(['ssh', '--docker', '--no-tunnel', '--accept-new-host-key', '--', 'id -un'], { env })
    expect(ssh).toMatchObject({ code: 0, stdout: 'akamas\n' })
  })

  it('needs the container running (exit 10)', async () => {
    await sandbox.stopContainer()
    try {
      const result = await runCli(['password', '--docker'], { env })
      expectCliError(result, { code: 10, message: 'management container management-container is not running' })
    } finally {
      await sandbox.startContainer()
    }
  })
})

describe('ALLOW_PASSWORD=false', () => {
  let sandbox: DockerSandbox
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    ;({ sandbox, env } = await start({ allowPassword: false, customPassword: 'Unused-Pass-9' }))
  })

  it('password prints it with a warning that sshd will refuse it', async () => {
    const result = await runCli(['password', '--docker'], { env })
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('Unused-Pass-9\n')
    expect(result.stderr).toBe(
      'warning: password login is disabled in the management container (ALLOW_PASSWORD is not true); sshd will refuse it\n',
    )
  })

  it('ssh says password login is disabled (exit 13) and how to log in instead; --identity-file does', async () => {
    const refused = await runCli(['ssh', '--docker', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
    expectCliError(refused, {
      code: 13,
      message: 'password login is disabled in container management-container (ALLOW_PASSWORD is not true)',
      hint: '--identity-file',
    })
    const withKey = await runCli(
      [
        'ssh',
        '--docker',
        '--no-tunnel',
        '--accept-new-host-key',
        '--identity-file',
        sandbox.userKey.path,
        '--',
        'hostname',
      ],
      { env },
    )
    expect(withKey).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
  })
})
