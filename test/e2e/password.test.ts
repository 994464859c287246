/**
 * `akm-access password`, run as built against the sandbox: what it prints (the password alone, --json, --key,
 * --key-file), where it finds the credentials (the Secret the pod references, well-known names, flags, the pod's own
 * file when Secrets are off limits), every way the Secret can be wrong, and that no secret ever reaches stderr.
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ExitCode } from '../../src/errors.js'
import { type CliResult, cliEnv, runCli } from '../helpers/cli.js'
import { type ExpectedError, expectCliError, expectNoSecrets, sandboxSecrets } from '../helpers/expect-cli.js'
import { type ManagementPodOptions, Sandbox } from '../sandbox/index.js'

let sandbox: Sandbox
let env: NodeJS.ProcessEnv
/** Passwords the tests put in Secrets of their own: they must not leak either. */
const testPasswords = ['Pw-from-secretKeyRef-1', 'Pw-from-envFrom-2', 'Pw-well-known-3', 'Pw-flags-4', 'Pw-pod-file-5']

beforeAll(async () => {
  sandbox = await Sandbox.start({ credentials: 'both' })
  env = cliEnv(sandbox.kubeconfigPath)
})
afterEach(async () => {
  sandbox.clearFaults()
  sandbox.allowAll()
  // Back to the chart's shape: the management-pod Secret with password and key, one pod that references it.
  for (const name of ['akamas-ssh', 'mgmt-env', 'mgmt-keys', 'management-pod-ssh', 'custom']) sandbox.deleteSecret(name)
  sandbox.setCredentials('both')
  const pods = sandbox.podNames()
  if (pods.length !== 1 || pods[0]!.startsWith('custom-')) await onlyPod({})
})
afterAll(async () => {
  await sandbox?.stop()
})

async function onlyPod(pod: ManagementPodOptions): Promise<string> {
  for (const name of sandbox.podNames()) await sandbox.deletePod(name)
  return sandbox.addPod(pod)
}

function password(args: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(['password', ...args], { env: { ...env, ...extraEnv } })
}

/**
 * A failure, checked twice: as a person sees it (one line, a hint, the exit code) and with --debug (diagnostics and
 * a stack, same exit code). Neither may contain a secret.
 */
async function expectFailure(args: string[], expected: ExpectedError): Promise<void> {
  const secrets = sandboxSecrets(sandbox, testPasswords)
  const plain = await password(args)
  expectCliError(plain, expected)
  expectNoSecrets(plain.stderr, secrets)
  const debug = await password([...args, '--debug'])
  expect(debug.code, debug.stderr).toBe(expected.code)
  expect(debug.stdout).toBe('')
  expect(debug.stderr).toMatch(/^debug +\d+ms /m)
  expect(debug.stderr).toMatch(/^\s+at .+:\d+:\d+\)?$/m)
  expectNoSecrets(debug.stderr, secrets)
}

const privateKey = () => `${sandbox.userKey.privateKey.trimEnd()}\n`

describe('what it prints', () => {
  it('only the password and a newline on stdout, nothing on stderr', async () => {
    const result = await password()
    expect(result).toMatchObject({ code: 0, stdout: `${sandbox.password}\n`, stderr: '' })
  })

  it('--json: the password and where it came from', async () => {
    const result = await password(['--json'])
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual({
      password: sandbox.password,
      source: 'Secret akamas/management-pod',
      passwordLogin: true,
    })
    expect(result.stderr).toBe('')
  })

  it('--key: the private key, exactly, and one ssh-keygen can read', async () => {
    const result = await password(['--key'])
    expect(result).toMatchObject({ code: 0, stdout: privateKey(), stderr: '' })
  })

  it('--key-file: mode 0600, refuses to overwrite, --force replaces even a world-readable file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'akm-keyfile-'))
    const file = join(dir, 'akamas')
    const written = await password(['--key-file', file])
    expect(written.code, written.stderr).toBe(0)
    expect(written.stdout).toBe('')
    expect(written.stderr).toBe(`wrote the private key from Secret akamas/management-pod to ${file}\n`)
    expect(readFileSync(file, 'utf8')).toBe(privateKey())
    expect(statSync(file).mode & 0o777).toBe(0o600)
    // OpenSSH accepts it as it is.
    const typeAndKey = (line: string) => line.trim().split(' ').slice(0, 2).join(' ')
    expect(typeAndKey(execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }))).toBe(
      typeAndKey(sandbox.userKey.publicKey),
    )

    writeFileSync(file, 'my own key\n')
    chmodSync(file, 0o644)
    await expectFailure(['--key-file', file], {
      code: ExitCode.local,
      message: `${file} already exists`,
      hint: 'pass --force to overwrite it',
    })
    expect(readFileSync(file, 'utf8')).toBe('my own key\n')

    const forced = await password(['--key-file', file, '--force', '--json'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(JSON.parse(forced.stdout)).toEqual({ keyFile: file, source: 'Secret akamas/management-pod' })
    expect(readFileSync(file, 'utf8')).toBe(privateKey())
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readdirSync(dir)).toEqual(['akamas'])
  })

  it('--key-file=~/… is expanded; a folder that does not exist is exit 17', async () => {
    const home = cliEnv(sandbox.kubeconfigPath)
    const result = await runCli(['password', '--key-file=~/akamas.key'], { env: home })
    expect(result.code, result.stderr).toBe(0)
    expect(statSync(join(home.HOME!, 'akamas.key')).mode & 0o777).toBe(0o600)
    await expectFailure(['--key-file', '/nonexistent/folder/akamas'], {
      code: ExitCode.local,
      message: 'cannot write /nonexistent/folder/akamas: the folder does not exist',
      hint: 'check that the folder exists and is writable',
    })
  })

  it('flags that do not go together: exit 2 with the reason', async () => {
    expectCliError(await password(['--key', '--key-file', '/tmp/x']), {
      code: ExitCode.usage,
      message: '--key-file=/tmp/x cannot also be provided when using --key',
      hint: '--help',
    })
    expectCliError(await password(['--force']), {
      code: ExitCode.usage,
      message: 'All of the following must be provided when using --force: --key-file',
      hint: '--help',
    })
    expectCliError(await password(['--keyfile', 'x']), { code: ExitCode.usage, message: 'Nonexistent flag: --keyfile' })
  })
})

describe('connections opened at start-up', () => {
  it('its first requests ride the TLS connections opened while oclif loaded', async () => {
    const result = await password(['--debug'])
    expect(result.code, result.stderr).toBe(0)
    const requests = result.stderr.split('\n').filter((line) => /^debug +\d+ms (GET|POST) /.test(line))
    expect(requests.length).toBeGreaterThanOrEqual(2)
    // The Secret and the pod list leave together, each on one of the two connections opened ahead.
    expect(
      requests.slice(0, 2).every((line) => line.endsWith('(connection opened at start-up)')),
      requests.join('\n'),
    ).toBe(true)
  })
})

describe('which Secret, which keys', () => {
  it('the Secret and key the pod reads into a password variable (env secretKeyRef)', async () => {
    sandbox.setSecret('akamas-ssh', { pw: 'Pw-from-secretKeyRef-1' })
    sandbox.deleteSecret('management-pod')
    await onlyPod({
      name: 'custom-ref',
      env: [
        { name: 'ALLOW_PASSWORD', value: 'true' },
        { name: 'CUSTOM_PASSWORD', valueFrom: { secretKeyRef: { name: 'akamas-ssh', key: 'pw' } } },
      ],
    })
    const result = await password(['--json'])
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual({
      password: 'Pw-from-secretKeyRef-1',
      source: 'Secret akamas/akamas-ssh',
      passwordLogin: true,
    })
  })

  it('a Secret the pod loads with envFrom', async () => {
    sandbox.setSecret('mgmt-env', { CUSTOM_PASSWORD: 'Pw-from-envFrom-2' })
    sandbox.deleteSecret('management-pod')
    await onlyPod({ name: 'custom-envfrom', env: [], envFrom: [{ secretRef: { name: 'mgmt-env' } }] })
    expect((await password()).stdout).toBe('Pw-from-envFrom-2\n')
  })

  it('a kubernetes.io/ssh-auth Secret mounted as a volume: ssh-privatekey, and a key-only install (exit 13)', async () => {
    sandbox.setSecret('mgmt-keys', { 'ssh-privatekey': sandbox.userKey.privateKey }, { type: 'kubernetes.io/ssh-auth' })
    sandbox.deleteSecret('management-pod')
    await onlyPod({
      name: 'custom-volume',
      env: [{ name: 'ALLOW_PASSWORD', value: 'false' }],
      volumes: [{ name: 'ssh-keys', secret: { secretName: 'mgmt-keys', defaultMode: 0o400 } }],
    })
    expect(await password(['--key'])).toMatchObject({ code: 0, stdout: privateKey() })
    await expectFailure([], {
      code: ExitCode.passwordDisabled,
      message: 'password login is disabled on this installation (key only)',
      hint: 'use the key: akm-access password --key-file ~/.ssh/akamas',
    })
  })

  it('a key-only installation of the chart (the Secret has ssh-privatekey only)', async () => {
    sandbox.setCredentials('key')
    await onlyPod({ name: 'custom-keyonly', env: [{ name: 'ALLOW_PASSWORD', value: 'false' }] })
    expect(await password(['--key'])).toMatchObject({ code: 0, stdout: privateKey() })
    const json = await runCli(['password', '--json'], { env })
    expect(json.code).toBe(ExitCode.passwordDisabled)
    expect(JSON.parse(json.stdout)).toEqual({
      error: {
        message: 'password login is disabled on this installation (key only)',
        hint: 'use the key: akm-access password --key-file ~/.ssh/akamas (or akm-access ssh, which uses it)',
        exitCode: ExitCode.passwordDisabled,
        name: 'AccessError',
      },
    })
  })

  it('a password sshd will refuse (ALLOW_PASSWORD=false): printed, with a warning on stderr', async () => {
    await onlyPod({ name: 'custom-nopassword', env: [{ name: 'ALLOW_PASSWORD', value: 'false' }] })
    const result = await password()
    expect(result).toMatchObject({
      code: 0,
      stdout: `${sandbox.password}\n`,
      stderr:
        'warning: password login is disabled in the management pod (ALLOW_PASSWORD is not true); sshd will refuse it\n',
    })
    expect(JSON.parse((await password(['--json'])).stdout)).toMatchObject({ passwordLogin: false })
  })

  it('a well-known Secret name when the pod references none', async () => {
    sandbox.deleteSecret('management-pod')
    sandbox.setSecret('management-pod-ssh', { 'ssh-password': 'Pw-well-known-3' })
    await onlyPod({ name: 'custom-noref', env: [] })
    const result = await password(['--json'])
    expect(JSON.parse(result.stdout)).toMatchObject({
      password: 'Pw-well-known-3',
      source: 'Secret akamas/management-pod-ssh',
    })
  })

  it('--secret, --password-field and --key-field name them', async () => {
    sandbox.setSecret('custom', { login: 'Pw-flags-4', sshkey: sandbox.userKey.privateKey })
    expect((await password(['--secret', 'custom', '--password-field', 'login'])).stdout).toBe('Pw-flags-4\n')
    expect((await password(['--secret', 'custom', '--key', '--key-field', 'sshkey'])).stdout).toBe(privateKey())
    await expectFailure(['--secret', 'custom', '--password-field', 'pass'], {
      code: ExitCode.badCredentials,
      message: 'Secret custom has no key "pass" (it has: login, sshkey)',
      hint: 'name an existing key with --password-field or --key-field',
    })
  })
})

describe('when the user may not read Secrets', () => {
  it('falls back to /work/akamas_password in the pod, and says so', async () => {
    sandbox.deny({ verb: 'get', resource: 'secrets' })
    const result = await password()
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toBe(`${sandbox.password}\n`)
    const pod = sandbox.currentPodName
    expect(result.stderr).toBe(`note: not allowed to read Secrets; using file /work/akamas_password in pod ${pod}\n`)
    const json = await password(['--json'])
    expect(JSON.parse(json.stdout)).toEqual({
      password: sandbox.password,
      source: `file /work/akamas_password in pod ${pod}`,
    })
  })

  it('nor exec: exit 7 naming "get secrets in namespace akamas", and that the fallback is denied too', async () => {
    sandbox.deny({ verb: 'get', resource: 'secrets' })
    sandbox.deny({ verb: '*', resource: 'pods/exec' })
    await expectFailure([], {
      code: ExitCode.forbidden,
      message: 'you may not get secrets in namespace akamas',
      hint: /kubectl auth can-i get secrets -n akamas.*needs exec \("create" on "pods\/exec"\), which is denied too/,
    })
  })

  it('and the pod has no password file: exit 7, saying so', async () => {
    sandbox.deny({ verb: 'get', resource: 'secrets' })
    writeFileSync(join(sandbox.workDir, 'akamas_password'), '')
    await expectFailure([], {
      code: ExitCode.forbidden,
      message: 'you may not get secrets in namespace akamas',
      hint: `/work/akamas_password in pod ${sandbox.currentPodName} is missing or empty`,
    })
  })

  it('--key has no fallback: exit 7', async () => {
    sandbox.deny({ verb: 'get', resource: 'secrets', namespace: 'akamas' })
    await expectFailure(['--key'], {
      code: ExitCode.forbidden,
      message: 'you may not get secrets in namespace akamas',
      hint: 'ask your cluster administrator for an RBAC Role that allows "get" on "secrets" in namespace akamas',
    })
  })
})

describe('a Secret that is missing or wrong', () => {
  it('no Secret at all: exit 11, naming the ones tried', async () => {
    sandbox.deleteSecret('management-pod')
    await expectFailure([], {
      code: ExitCode.secretNotFound,
      message: "no Secret with the management pod's SSH credentials in namespace akamas",
      hint: 'name it with --secret (tried: management-pod, management-pod-ssh,',
    })
  })

  it('--secret that does not exist: exit 11', async () => {
    await expectFailure(['--secret', 'akamas-ssh-v2'], {
      code: ExitCode.secretNotFound,
      message: 'Secret akamas-ssh-v2 not found in namespace akamas',
      hint: 'kubectl get secrets -n akamas',
    })
  })

  it('without the expected keys: exit 12, listing the keys it has', async () => {
    sandbox.setSecret('management-pod', { username: 'akamas', note: 'rotated by ops' })
    await expectFailure([], {
      code: ExitCode.badCredentials,
      message: 'Secret akamas/management-pod holds neither an SSH password nor a private key',
      hint: 'name its keys with --password-field or --key-field (it has: username, note)',
    })
  })

  it('malformed base64: exit 12', async () => {
    sandbox.setSecret('management-pod', {}, { rawData: { password: 'bm90*YmFzZTY0!' } })
    await expectFailure([], {
      code: ExitCode.badCredentials,
      message: 'the value of "password" in Secret management-pod is not valid base64',
      hint: "kubectl get secret management-pod -o jsonpath='{.data.password}'",
    })
  })

  it('an empty password and a key that is not one (the sandbox’s malformed Secret): exit 12 for each', async () => {
    sandbox.setCredentials('malformed')
    await expectFailure([], {
      code: ExitCode.badCredentials,
      message: 'the password (key "password") in Secret akamas/management-pod is empty',
      hint: 'the private key is there: akm-access password --key',
    })
    await expectFailure(['--key'], {
      code: ExitCode.badCredentials,
      message: /^the private key \(key "id_rsa"\) in Secret akamas\/management-pod is malformed: /,
      hint: 'the Secret must hold an OpenSSH, PEM (RSA/EC) or PKCS#8 private key',
    })
    expect(existsSync(join(sandbox.dir, 'never-written'))).toBe(false)
    await expectFailure(['--key-file', join(sandbox.dir, 'never-written')], {
      code: ExitCode.badCredentials,
      message: 'is malformed',
    })
    expect(existsSync(join(sandbox.dir, 'never-written'))).toBe(false)
  })

  it('key data that is no key at all does not hide a good password', async () => {
    sandbox.setSecret('management-pod', { password: sandbox.password, id_rsa: 'ssh-rsa AAAA… (a public key)' })
    expect(await password()).toMatchObject({ code: 0, stdout: `${sandbox.password}\n` })
    await expectFailure(['--key'], {
      code: ExitCode.badCredentials,
      message: 'the value of "id_rsa" in Secret management-pod is not a PEM or OpenSSH private key',
      hint: 'a key starts with "-----BEGIN ... PRIVATE KEY-----"',
    })
  })

  it('--key when the Secret has only a password: exit 12', async () => {
    sandbox.setCredentials('password')
    await expectFailure(['--key'], {
      code: ExitCode.badCredentials,
      message: 'Secret akamas/management-pod holds no private key',
      hint: 'this installation uses a password: run akm-access password without --key',
    })
  })
})

describe('shell completion', () => {
  it('the autocomplete plugin completes the command and its flags in bash', async () => {
    const home = cliEnv(undefined)
    const setup = await runCli(['autocomplete', 'bash'], { env: home })
    expect(setup.code, setup.stderr).toBe(0)
    const setupFile = join(home.HOME!, '.cache', 'akm-access', 'autocomplete', 'bash_setup')
    const complete = (words: string[]) =>
      execFileSync(
        'bash',
        [
          '--norc',
          '-c',
          `source '${setupFile}'; COMP_WORDS=(${words.map((word) => `'${word}'`).join(' ')}); ` +
            `COMP_CWORD=${words.length - 1}; COMP_LINE='${words.join(' ')}'; COMP_POINT=\${#COMP_LINE}; ` +
            `_akm-access_autocomplete; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        { encoding: 'utf8', env: home },
      )
        .split('\n')
        .filter(Boolean)
    expect(complete(['akm-access', 'pass'])).toEqual(['password'])
    expect(complete(['akm-access', 'password', '--key'])).toEqual(
      expect.arrayContaining(['--key', '--key-file', '--key-field']),
    )
    expect(complete(['akm-access', 'password', '--se']).sort()).toEqual(['--secret', '--selector'])
  })
})
