import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type CliResult, cliEnv, cliInTerminal, cliPath, runCli, type Terminal } from '../helpers/cli.js'
import { Sandbox } from '../sandbox/index.js'
import { AKAMAS_STANDIN_MARK, AKAMAS_STANDIN_PASSWORD } from '../sandbox/pod-runtime.js'

let sandbox: Sandbox
let env: NodeJS.ProcessEnv
let local: string
const terminals: Terminal[] = []

beforeAll(async () => {
  sandbox = await Sandbox.start()
  env = cliEnv(sandbox.kubeconfigPath, { TERM: 'xterm-256color' })
  local = mkdtempSync(join(tmpdir(), 'akm-akamas-'))
})
afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
  rmSync(local, { recursive: true, force: true })
})

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex')

interface StandinRecord {
  argv: string[]
  cwd: string
  tty: boolean
  files: Record<string, string | Record<string, string>>
}

/** The stand-in Akamas CLI's report of how it was called (test/sandbox/pod-runtime.ts). */
function record(output: string): StandinRecord {
  const line = output.split(/\r?\n/).find((text) => text.startsWith(AKAMAS_STANDIN_MARK))
  if (!line) throw new Error(`the Akamas CLI stand-in did not run; output:\n${output}`)
  return JSON.parse(line.slice(AKAMAS_STANDIN_MARK.length))
}

/** The CLI on pipes, from a working folder of our choice (relative paths are the point of some tests). */
function akamasIn(cwd: string, args: string[], input?: Buffer | string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, 'akamas', ...args], { cwd, env, stdio: 'pipe' })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      const stdoutBuffer = Buffer.concat(out)
      resolve({ code, signal, stdout: stdoutBuffer.toString(), stderr: Buffer.concat(err).toString(), stdoutBuffer })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}

const uploadsLeft = () => {
  const root = join(sandbox.workDir, '.akm-access', 'uploads')
  return existsSync(root) ? readdirSync(root) : []
}

describe('akm-access akamas', () => {
  it('passes tricky arguments exactly, with or without --', async () => {
    const tricky = ['a b', '$HOME', '*', '--', "it's", '"q"', '', '-n', '--debug', '; rm -rf /']
    const plain = await runCli(['akamas', 'echo', ...tricky], { env })
    expect(plain.code).toBe(0)
    expect(plain.stdout).toBe(tricky.map((arg) => `[${arg}]\n`).join(''))
    expect(record(plain.stderr)).toMatchObject({ argv: ['echo', ...tricky], cwd: '/work', tty: false, files: {} })
    const separated = await runCli(['akamas', '-n', sandbox.namespace, '--', 'echo', ...tricky], { env })
    expect(separated.stdout).toBe(plain.stdout)
  })

  it('uploads the local files and folders it names, rewrites them, and removes them afterwards', async () => {
    const work = join(local, 'project')
    mkdirSync(join(work, 'pack', 'nested'), { recursive: true })
    writeFileSync(join(work, 'study.yaml'), 'name: my study\n')
    writeFileSync(join(work, 'workflow'), 'a workflow without an extension\n')
    writeFileSync(join(work, 'pack', 'pack.json'), '{"name":"pack"}\n')
    writeFileSync(join(work, 'pack', 'nested', 'data.bin'), randomBytes(300_000))
    writeFileSync(join(work, 'study'), 'a local file named like an Akamas word\n')

    const result = await akamasIn(work, [
      'create',
      'study',
      './study.yaml',
      '-f',
      'workflow',
      '--from=pack/',
      ':/work/remote.yaml',
      'study',
    ])
    expect(result.code, result.stderr).toBe(0)
    const seen = record(result.stderr)
    const [, , studyPath, , workflowPath, fromArg, remoteArg, word] = seen.argv
    expect(studyPath).toMatch(/^\/work\/\.akm-access\/uploads\/\d{8}T\d{6}-[0-9a-f]{6}\/study\.yaml$/)
    const folder = studyPath!.slice(0, studyPath!.lastIndexOf('/'))
    expect(workflowPath).toBe(`${folder}/workflow`)
    expect(fromArg).toBe(`--from=${folder}/pack`)
    expect(remoteArg).toBe('/work/remote.yaml')
    expect(word).toBe('study') // a word, not a file, though a local file has that name
    expect(seen.files).toEqual({
      [studyPath!]: sha256('name: my study\n'),
      [workflowPath!]: sha256('a workflow without an extension\n'),
      [`${folder}/pack`]: {
        'pack.json': sha256('{"name":"pack"}\n'),
        'nested/data.bin': sha256(readFileSync(join(work, 'pack', 'nested', 'data.bin'))),
      },
    })
    expect(uploadsLeft()).toEqual([])
    expect(existsSync(join(sandbox.workDir, '.akm-access'))).toBe(false)
  })

  it('keeps the uploads with --keep-uploads, and removes them when the command fails', async () => {
    writeFileSync(join(local, 'kept.yaml'), 'kept\n')
    const kept = await runCli(['akamas', '--keep-uploads', '--', 'create', 'study', join(local, 'kept.yaml')], { env })
    expect(kept.code).toBe(0)
    const folder = /kept in (\/work\/\.akm-access\/uploads\/\S+)/.exec(kept.stderr)?.[1]
    expect(folder).toBeDefined()
    expect(sandbox.readWorkFile(`${folder!.slice('/work/'.length)}/kept.yaml`).toString()).toBe('kept\n')
    rmSync(join(sandbox.workDir, '.akm-access'), { recursive: true })

    const failed = await runCli(['akamas', 'exit', '9', join(local, 'kept.yaml')], { env })
    expect(failed.code).toBe(9)
    expect(record(failed.stderr).argv[2]).toMatch(/^\/work\/\.akm-access\/uploads\/.+\/kept\.yaml$/)
    expect(uploadsLeft()).toEqual([])
  })

  it('streams stdin and stdout byte for byte and returns the exit status', async () => {
    const data = randomBytes(2 * 1024 * 1024)
    const piped = await runCli(['akamas', 'cat'], { env, input: data, timeoutMs: 60_000 })
    expect(piped.code).toBe(0)
    expect(sha256(piped.stdoutBuffer)).toBe(sha256(data))
    expect((await runCli(['akamas', 'exit', '42'], { env })).code).toBe(42)
  })

  it('gives an interactive command a real terminal: akamas login asks for a password', async () => {
    const terminal = cliInTerminal(['akamas', 'login'], env)
    terminals.push(terminal)
    await terminal.waitFor('Password: ')
    expect(record(terminal.output).tty).toBe(true)
    terminal.type(`${AKAMAS_STANDIN_PASSWORD}\r`)
    await terminal.waitFor('Logged in.')
    expect(terminal.output).not.toContain(AKAMAS_STANDIN_PASSWORD) // not echoed
    expect((await terminal.exit()).code).toBe(0)

    const wrong = cliInTerminal(['akamas', 'login'], env)
    terminals.push(wrong)
    await wrong.waitFor('Password: ')
    wrong.type('nope\r')
    await wrong.waitFor('Login failed.')
    expect((await wrong.exit()).code).toBe(1)

    // On pipes there is no terminal to ask on: the Akamas CLI says so and fails.
    const piped = await runCli(['akamas', 'login'], { env })
    expect(piped.code).toBe(3)
  })

  it('prints a shell function that makes a plain `akamas` go through akm-access', async () => {
    const bin = join(local, 'bin')
    mkdirSync(bin, { recursive: true })
    writeFileSync(join(bin, 'akm-access'), `#!/bin/sh\nexec '${process.execPath}' '${cliPath}' "$@"\n`, { mode: 0o755 })
    const aliasEnv = { ...env, PATH: `${bin}:${env.PATH}` }
    const script =
      'eval "$(akm-access akamas --print-alias --shell bash)"; akamas echo "a b" \'$x\' -- -n; echo "status=$?"'
    const result = await new Promise<string>((resolve) => {
      const child = spawn('bash', ['--norc', '--noprofile', '-c', script], { env: aliasEnv, cwd: local })
      let out = ''
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk
      })
      child.on('close', () => resolve(out))
    })
    expect(result).toBe('[a b]\n[$x]\n[--]\n[-n]\nstatus=0\n')
  })

  it('refuses stray arguments before -- with exit 2', async () => {
    const result = await runCli(['akamas', '-n', sandbox.namespace, 'list', '--', 'study'], { env })
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/Unexpected argument: list/)
  })
})
