/**
 * Fidelity of the Docker Engine emulation, proven with the real docker CLI (/usr/local/bin/docker, v28): every
 * assertion is about what the CLI prints and returns when it talks to the engine over its unix socket, its TCP
 * port, or a Docker context. The CLI runs with a temp DOCKER_CONFIG and HOME, so the user's ~/.docker is never read.
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { type IncomingHttpHeaders, request } from 'node:http'
import { createConnection, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Terminal } from '../../helpers/cli.js'
import { DockerSandbox } from './index.js'

const DOCKER = '/usr/local/bin/docker'
/** The parts of `docker inspect`'s output that the tests read beyond toMatchObject. */
type Inspected = { Config: { Env: string[] }; State: { Pid: number; StartedAt: string } }
const NAME = 'management-container'

interface DockerResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  stdoutBuffer: Buffer
}

/**
 * Runs the docker CLI on pipes. Asynchronous on purpose: the engine runs in this process, so a synchronous spawn
 * would block the very event loop that has to answer the CLI.
 */
function docker(
  args: string[],
  env: NodeJS.ProcessEnv,
  options: { input?: string | Buffer; timeoutMs?: number } = {},
): Promise<DockerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(DOCKER, args, { env, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    const timeoutMs = options.timeoutMs ?? 20_000
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`docker ${args.join(' ')} did not finish in ${timeoutMs} ms; stderr: ${Buffer.concat(err)}`))
    }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const stdoutBuffer = Buffer.concat(out)
      resolve({
        code,
        signal,
        stdout: stdoutBuffer.toString('utf8'),
        stderr: Buffer.concat(err).toString(),
        stdoutBuffer,
      })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(options.input ?? '')
  })
}

async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Logs in to the container's sshd with ssh2 and runs `hostname`; resolves with the output or the failure. */
function sshHostname(
  sock: Socket,
  hostPublicKey: string,
  auth: { password: string } | { privateKey: string },
): Promise<{ ok: true; output: string } | { ok: false; error: string }> {
  const expectedKey = Buffer.from(hostPublicKey.split(/\s+/)[1] ?? '', 'base64')
  return new Promise((resolve) => {
    const client = new ssh2.Client()
    const finish = (result: { ok: true; output: string } | { ok: false; error: string }) => {
      client.end()
      sock.destroy()
      resolve(result)
    }
    client.on('error', (error) => finish({ ok: false, error: error.message }))
    client.on('ready', () => {
      client.exec('hostname', (error, stream) => {
        if (error) return finish({ ok: false, error: error.message })
        let output = ''
        stream.on('data', (chunk: Buffer) => {
          output += chunk.toString()
        })
        stream.stderr.resume()
        stream.on('close', () => finish({ ok: true, output }))
      })
    })
    client.connect({
      sock,
      username: 'akamas',
      ...auth,
      readyTimeout: 10_000,
      hostVerifier: (key: Buffer) => key.equals(expectedKey),
    })
  })
}

/** One plain API request on the unix socket. */
function api(
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request(
      {
        socketPath,
        method,
        path,
        headers:
          payload === undefined
            ? {}
            : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        )
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

/**
 * `POST /exec/{id}/start` with the hijack, written by hand as the Go client does: then `input`, then a half-close.
 * Resolves with the response's head lines and everything after it, once the engine ends the connection.
 */
function hijack(
  socketPath: string,
  id: string,
  options: object,
  input: string,
): Promise<{ head: string[]; stream: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath)
    const body = JSON.stringify(options)
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      const all = Buffer.concat(chunks)
      const end = all.indexOf('\r\n\r\n')
      socket.destroy()
      resolve({ head: all.subarray(0, end).toString('latin1').split('\r\n'), stream: all.subarray(end + 4) })
    })
    socket.write(
      `POST /v1.47/exec/${id}/start HTTP/1.1\r\nHost: api.moby.localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    )
    socket.end(input)
  })
}

/** Splits a multiplexed stream into its stdcopy frames: [type, 0, 0, 0, uint32 BE size] + payload. */
function stdcopyFrames(stream: Buffer): { type: number; payload: Buffer }[] {
  const frames: { type: number; payload: Buffer }[] = []
  let offset = 0
  while (offset < stream.length) {
    expect(stream.length - offset).toBeGreaterThanOrEqual(8)
    expect([...stream.subarray(offset + 1, offset + 4)]).toEqual([0, 0, 0])
    const size = stream.readUInt32BE(offset + 4)
    frames.push({ type: stream[offset]!, payload: stream.subarray(offset + 8, offset + 8 + size) })
    offset += 8 + size
  }
  return frames
}

describe('the docker CLI against the emulated engine', () => {
  let sandbox: DockerSandbox
  let home: string
  /** The CLI's environment: DOCKER_HOST on the unix socket, a temp DOCKER_CONFIG and HOME, nothing inherited. */
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    sandbox = await DockerSandbox.start()
    home = mkdtempSync(join(tmpdir(), 'akm-docker-home-'))
    env = { PATH: process.env.PATH, HOME: home, LANG: 'C.UTF-8', ...sandbox.dockerEnv() }
  })

  afterAll(async () => {
    await sandbox?.stop()
    if (home) rmSync(home, { recursive: true, force: true })
  })

  it('docker version shows the server and negotiates the API version down through _ping', async () => {
    const result = await docker(['version'], env)
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/API version:\s+1\.47 \(downgraded from 1\.50\)/)
    expect(result.stdout).toMatch(/Server: Docker Engine - Community\n Engine:\n {2}Version:\s+27\.5\.1\n/)
    expect(result.stdout).toMatch(/API version:\s+1\.47 \(minimum version 1\.24\)/)
    expect(result.stdout).toMatch(/OS\/Arch:\s+linux\/(amd64|arm64)\n {2}Experimental:\s+false/)
    // The client pings unversioned (HEAD first), then uses the negotiated prefix.
    const paths = sandbox.requests.slice(-2).map((r) => `${r.method} ${r.url}`)
    expect(paths).toEqual(['HEAD /_ping', 'GET /v1.47/version'])
    const formatted = await docker(['version', '--format', '{{.Server.APIVersion}} {{.Server.Os}}'], env)
    expect(formatted.stdout).toBe('1.47 linux\n')
  })

  it('refuses an API version above its own, with dockerd’s message', async () => {
    const result = await docker(['ps'], { ...env, DOCKER_API_VERSION: '1.50' })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(
      'Error response from daemon: client version 1.50 is too new. Maximum supported API version is 1.47',
    )
  })

  it('docker ps lists the running container, and its filters select it', async () => {
    const table = await docker(['ps'], env)
    expect(table.code).toBe(0)
    const [header, row, ...rest] = table.stdout.trimEnd().split('\n')
    expect(header).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/)
    expect(rest).toEqual([])
    expect(row).toMatch(new RegExp(`^${sandbox.shortId}\\s+\\S+/akamas/management-container:\\S+\\s+"/usr/sbin/sshd`))
    expect(row).toMatch(/\sUp (Less than a second|\d+ seconds?)\s+22\/tcp\s+management-container$/)

    const names = (filters: string[], extra: string[] = []) =>
      docker(['ps', ...extra, ...filters.flatMap((f) => ['--filter', f]), '--format', '{{.Names}}'], env)
    expect((await names(['label=com.docker.compose.service=management-container'])).stdout).toBe(`${NAME}\n`)
    expect((await names(['label=com.docker.compose.project=akamas', 'label=com.docker.compose.oneoff'])).stdout).toBe(
      `${NAME}\n`,
    )
    expect((await names(['label=com.docker.compose.service=other'])).stdout).toBe('')
    expect((await names(['name=^management-container$'])).stdout).toBe(`${NAME}\n`)
    expect((await names(['name=management'])).stdout).toBe(`${NAME}\n`)
    expect((await names(['name=postgres'])).stdout).toBe('')
    expect((await names(['status=running'])).stdout).toBe(`${NAME}\n`)
    expect((await names(['status=exited'])).stdout).toBe('')
    expect((await names([`id=${sandbox.shortId}`])).stdout).toBe(`${NAME}\n`)
    const image = sandbox.container.image.replace(/:[^:/]+$/, '')
    expect((await names([`ancestor=${image}`, 'network=akamas', 'volume=/work', 'expose=22'])).stdout).toBe(`${NAME}\n`)
    expect((await names(['health=healthy'])).stdout).toBe('')
    expect((await names(['network=bridge'])).stdout).toBe('')
    const json = await docker(['ps', '--no-trunc', '--format', '{{.ID}} {{.Label "com.docker.compose.service"}}'], env)
    expect(json.stdout).toBe(`${sandbox.containerId} management-container\n`)

    // The CLI sends filters as JSON in the map form ({"key": {"value": true}}), the one filters.FromJSON prefers.
    const filtered = sandbox.requests.filter((r) => r.path === '/containers/json' && r.query.filters !== undefined)
    expect(filtered[0]?.query.filters).toBe('{"label":{"com.docker.compose.service=management-container":true}}')

    const bad = await names(['bogus=1'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain("Error response from daemon: invalid filter 'bogus'")
    const badStatus = await names(['status=sleeping'])
    expect(badStatus.stderr).toContain("Error response from daemon: invalid filter 'status=sleeping'")
  })

  it('docker inspect shows the compose container', async () => {
    const result = await docker(['inspect', NAME], env)
    expect(result.code).toBe(0)
    const [inspected, ...others] = JSON.parse(result.stdout) as Inspected[]
    expect(others).toEqual([])
    expect(inspected).toMatchObject({
      Id: sandbox.containerId,
      Name: '/management-container',
      Path: '/usr/sbin/sshd',
      State: { Status: 'running', Running: true, Paused: false, ExitCode: 0 },
      Config: {
        Hostname: sandbox.shortId,
        User: 'akamas',
        WorkingDir: '/work',
        ExposedPorts: { '22/tcp': {} },
        Labels: {
          'com.docker.compose.project': 'akamas',
          'com.docker.compose.service': 'management-container',
          'com.docker.compose.container-number': '1',
        },
      },
      NetworkSettings: { Networks: { akamas: { IPAddress: sandbox.ipAddress, Gateway: '127.18.0.1' } } },
      Mounts: [{ Type: 'bind', Source: sandbox.workDir, Destination: '/work', RW: true }],
    })
    expect(inspected?.Config.Env).toEqual(expect.arrayContaining(['ALLOW_PASSWORD=true']))
    expect(inspected?.State.Pid).toBeGreaterThan(1)
    expect(Date.parse(inspected?.State.StartedAt ?? '')).toBeGreaterThan(Date.now() - 120_000)

    const running = await docker(['inspect', '--format', '{{.State.Running}}', NAME], env)
    expect(running.stdout).toBe('true\n')
    const byId = await docker(['container', 'inspect', '-f', '{{.Name}} {{.Config.Image}}', sandbox.shortId], env)
    expect(byId.stdout).toMatch(/^\/management-container \S+\/akamas\/management-container:\S+\n$/)

    // An unknown name: the CLI looks through images, networks, volumes and plugins too, then gives up.
    const missing = await docker(['inspect', 'no-such-thing'], env)
    expect(missing.code).toBe(1)
    expect(missing.stdout).toBe('[]\n')
    expect(missing.stderr).toBe('Error: No such object: no-such-thing\n')
  })

  it('docker exec separates stdout from stderr and returns the exit code', async () => {
    const result = await docker(['exec', NAME, 'sh', '-c', 'echo out; echo err >&2; exit 3'], env)
    expect(result).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' })
    // The exec was created, started through the hijack (101, multiplexed since no TTY) and then inspected.
    const [create, start, inspect] = sandbox.requests.slice(-3)
    expect(create).toMatchObject({ method: 'POST', path: `/containers/${NAME}/exec`, status: 201 })
    expect(start).toMatchObject({ method: 'POST', upgrade: 'tcp', status: 101 })
    expect(start?.path).toMatch(/^\/exec\/[0-9a-f]{64}\/start$/)
    expect(inspect).toMatchObject({ method: 'GET', path: start?.path.replace(/start$/, 'json'), status: 200 })
    const exec = sandbox.engine.execInspections().find((e) => `/exec/${e.ID}/start` === start?.path)
    expect(exec).toMatchObject({ Running: false, ExitCode: 3, ProcessConfig: { entrypoint: 'sh', tty: false } })
  })

  it('docker exec -t gives the process a terminal: one raw stream, CRLF line ends', async () => {
    const result = await docker(['exec', '-t', NAME, 'sh', '-c', 'echo out; echo err >&2; tty; exit 4'], env)
    expect(result.code).toBe(4)
    expect(result.stdout).toMatch(/^out\r\nerr\r\n\/dev\/pts\/\d+\r\n$/)
    expect(result.stderr).toBe('')
  })

  it('docker exec -i gives the process EOF when the CLI’s stdin ends (half-close)', async () => {
    const cat = await docker(['exec', '-i', NAME, 'cat'], env, { input: 'data\n' })
    expect(cat).toMatchObject({ code: 0, stdout: 'data\n', stderr: '' })
    const after = await docker(['exec', '-i', NAME, 'sh', '-c', 'wc -c; echo after-eof >&2'], env, {
      input: 'twelve bytes',
    })
    expect(after).toMatchObject({ code: 0, stdout: '12\n', stderr: 'after-eof\n' })
    // Without -i the process's stdin is empty.
    const noStdin = await docker(['exec', NAME, 'wc', '-c'], env, { input: 'ignored' })
    expect(noStdin.stdout).toBe('0\n')
  })

  it('streams 4+ MiB of binary data through docker exec -i cat byte-exact', async () => {
    const data = randomBytes(4 * 1024 * 1024 + 12_345)
    const started = Date.now()
    const result = await docker(['exec', '-i', NAME, 'cat'], env, { input: data, timeoutMs: 30_000 })
    const elapsed = Date.now() - started
    expect(result.code).toBe(0)
    expect(result.stderr).toBe('')
    expect(result.stdoutBuffer.length).toBe(data.length)
    expect(sha256(result.stdoutBuffer)).toBe(sha256(data))
    expect(elapsed).toBeLessThan(20_000)
  })

  it('runs exec’d processes like dockerd: user, working dir, environment, hostname', async () => {
    const script = 'echo "$(id -un) $PWD $HOME $HOSTNAME $(hostname) $FOO $ALLOW_PASSWORD $TERM."'
    const result = await docker(['exec', '-e', 'FOO=bar', NAME, 'sh', '-c', script], env)
    expect(result.stdout).toBe(`akamas /work /work ${sandbox.shortId} ${sandbox.shortId} bar true .\n`)
    const inTmp = await docker(['exec', '-w', '/tmp', NAME, 'pwd'], env)
    expect(inTmp.stdout).toBe('/tmp\n')
    const password = await docker(['exec', NAME, 'cat', '/work/akamas_password'], env)
    expect(password).toMatchObject({ code: 0, stdout: `${sandbox.password}\n` })
    expect(sandbox.password).toMatch(/^\S{12,}$/)
    expect(sandbox.readWorkFile('akamas_password').toString()).toBe(`${sandbox.password}\n`)
  })

  it('reports a command that cannot start as runc does (exit 127 / 126)', async () => {
    const missing = await docker(['exec', NAME, 'no-such-command'], env)
    expect(missing.code).toBe(127)
    expect(missing.stdout).toBe(
      'OCI runtime exec failed: exec failed: unable to start container process: exec: "no-such-command": executable file not found in $PATH: unknown\r\n',
    )
    const notExecutable = await docker(['exec', NAME, '/etc/passwd'], env)
    expect(notExecutable.code).toBe(126)
    expect(notExecutable.stdout).toContain('exec: "/etc/passwd": permission denied')
    const badDir = await docker(['exec', '-w', '/no/such/dir', NAME, 'true'], env)
    expect(badDir.code).toBe(127)
    expect(badDir.stdout).toContain('chdir to cwd ("/no/such/dir") set in config.json failed')
    const badUser = await docker(['exec', '-u', 'nobody-here', NAME, 'true'], env)
    expect(badUser.code).toBe(1)
    expect(badUser.stderr).toContain(
      'Error response from daemon: unable to find user nobody-here: no matching entries in passwd file',
    )
  })

  it('docker exec -d starts the process in the background', async () => {
    const result = await docker(['exec', '-d', NAME, 'sh', '-c', 'sleep 0.2; echo done > /work/detached.txt'], env)
    expect(result).toMatchObject({ code: 0, stdout: '', stderr: '' })
    await waitUntil(() => existsSync(join(sandbox.workDir, 'detached.txt')), 'the detached exec to write its file')
    expect(sandbox.readWorkFile('detached.txt').toString()).toBe('done\n')
  })

  it('docker exec -it bash works in a real terminal: prompt, echo, size, resize, exit code', async () => {
    const terminal = new Terminal([DOCKER, 'exec', '-it', NAME, 'bash'], env, { cols: 100, rows: 30 })
    try {
      // Debian's /etc/bash.bashrc prompt: user@hostname (the short id), ~ for HOME=/work.
      const prompt = `akamas@${sandbox.shortId}:~$ `
      await terminal.waitFor(prompt)
      let from = terminal.output.length
      terminal.type('echo typed-$((6*7))\r')
      await terminal.waitFor('echo typed-$((6*7))\r\n', { from })
      await terminal.waitFor('typed-42\r\n', { from })
      from = terminal.output.length
      terminal.type('stty size\r')
      await terminal.waitFor('30 100\r\n', { from })

      terminal.resize(120, 40)
      // The CLI gets SIGWINCH and asks the engine to resize the exec's terminal.
      await waitUntil(
        () =>
          sandbox.requests.some(
            (r) => /\/exec\/[0-9a-f]+\/resize$/.test(r.path) && r.query.h === '40' && r.status === 200,
          ),
        'the resize request',
      )
      from = terminal.output.length
      terminal.type('stty size\r')
      await terminal.waitFor('40 120\r\n', { from })
      from = terminal.output.length
      terminal.type('echo $TERM\r')
      await terminal.waitFor('xterm\r\n', { from })

      terminal.type('exit 5\r')
      const exit = await terminal.exit()
      expect(exit.code).toBe(5)
    } finally {
      terminal.kill()
    }
    const start = sandbox.requests.filter((r) => r.upgrade === 'tcp').at(-1)
    expect(start?.status).toBe(101)
    // The terminal's size travels as [height, width], in both the ExecConfig and the start options.
    expect(start?.body).toEqual({ Detach: false, Tty: true, ConsoleSize: [30, 100] })
    const create = sandbox.requests.filter((r) => r.path === `/containers/${NAME}/exec`).at(-1)
    expect(create?.body).toMatchObject({ Tty: true, ConsoleSize: [30, 100], AttachStdin: true, Cmd: ['bash'] })
    // The first resize (to the terminal's size) comes right after the attach.
    expect(sandbox.requests.some((r) => r.path.endsWith('/resize') && r.query.h === '30' && r.query.w === '100')).toBe(
      true,
    )
  })

  it('serves the same API on loopback TCP', async () => {
    const tcpHost = sandbox.tcpHost
    expect(tcpHost).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/)
    const tcpEnv = { ...env, DOCKER_HOST: tcpHost }
    const before = sandbox.requests.length
    const ps = await docker(['ps', '--format', '{{.Names}}'], tcpEnv)
    expect(ps).toMatchObject({ code: 0, stdout: `${NAME}\n` })
    const cat = await docker(['exec', '-i', NAME, 'sh', '-c', 'cat; exit 7'], tcpEnv, { input: 'over tcp' })
    expect(cat).toMatchObject({ code: 7, stdout: 'over tcp' })
    const used = sandbox.requests.slice(before)
    expect(used.length).toBeGreaterThan(3)
    expect(used.every((r) => r.transport === 'tcp')).toBe(true)
  })

  it('works through a Docker context (--context, and currentContext in config.json)', async () => {
    const configDir = mkdtempSync(join(home, 'config-'))
    const context = sandbox.createContext('akamas-sandbox', { configDir, description: 'the sandbox engine' })
    sandbox.createContext('other', { configDir, setCurrent: false })
    expect(context.metaPath).toBe(
      join(configDir, 'contexts', 'meta', createHash('sha256').update('akamas-sandbox').digest('hex'), 'meta.json'),
    )
    // No DOCKER_HOST: it would override any context.
    const contextEnv = { PATH: process.env.PATH, HOME: home, DOCKER_CONFIG: configDir }
    const list = await docker(['context', 'ls', '--format', '{{.Name}} {{.Current}} {{.DockerEndpoint}}'], contextEnv)
    expect(list.stderr).toBe('')
    expect(list.stdout.split('\n')).toEqual(
      expect.arrayContaining([
        `akamas-sandbox true ${sandbox.dockerHost}`,
        `other false ${sandbox.dockerHost}`,
        'default false unix:///var/run/docker.sock',
      ]),
    )
    const inspect = await docker(['context', 'inspect', 'akamas-sandbox'], contextEnv)
    expect(JSON.parse(inspect.stdout)).toMatchObject([
      {
        Name: 'akamas-sandbox',
        Metadata: { Description: 'the sandbox engine' },
        Endpoints: { docker: { Host: sandbox.dockerHost, SkipTLSVerify: false } },
      },
    ])
    const current = await docker(['ps', '--format', '{{.Names}}'], contextEnv)
    expect(current).toMatchObject({ code: 0, stdout: `${NAME}\n` })
    const explicit = await docker(['--context', 'other', 'exec', NAME, 'hostname'], contextEnv)
    expect(explicit).toMatchObject({ code: 0, stdout: `${sandbox.shortId}\n` })
  })

  it('sshd accepts the generated password (ALLOW_PASSWORD=true) and the authorized key', async () => {
    const byPassword = await sshHostname(await sandbox.dial(22), sandbox.hostKey.publicKey, {
      password: sandbox.password,
    })
    expect(byPassword).toEqual({ ok: true, output: `${sandbox.shortId}\n` })
    const byKey = await sshHostname(await sandbox.dial(22), sandbox.hostKey.publicKey, {
      privateKey: sandbox.userKey.privateKey,
    })
    expect(byKey).toEqual({ ok: true, output: `${sandbox.shortId}\n` })
    const wrong = await sshHostname(await sandbox.dial(22), sandbox.hostKey.publicKey, { password: 'wrong' })
    expect(wrong.ok).toBe(false)
  })

  it('sshd answers at the container’s address, from this machine and from a bridge inside the container', async () => {
    const format = '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'
    const address = (await docker(['inspect', '-f', format, NAME], env)).stdout.trim()
    expect(address).toBe(sandbox.ipAddress)
    expect(address).toMatch(/^127\.18\.\d+\.\d+$/)
    // Where the host can route to the container (Linux bridge networks): its address, port 22.
    const banner = await new Promise<string>((resolve, reject) => {
      const socket = createConnection({ host: address, port: 22 })
      socket.once('data', (chunk: Buffer) => {
        socket.destroy()
        resolve(chunk.toString('latin1'))
      })
      socket.once('error', reject)
    })
    expect(banner).toMatch(/^SSH-2\.0-OpenSSH/)
    // Inside the container: a bridge to its own address (what an exec'd stream to sshd uses).
    const inside = await docker(
      ['exec', '-i', NAME, 'bash', '-c', `exec 3<>/dev/tcp/${address}/22 && head -c 8 <&3`],
      env,
    )
    expect(inside).toMatchObject({ code: 0, stdout: 'SSH-2.0-' })
  })

  it('speaks the hijack protocol on the wire: 101 UPGRADED, stdcopy frames, half-close, no second start', async () => {
    const created = await api(sandbox.socketPath, 'POST', `/v1.47/containers/${NAME}/exec`, {
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Cmd: ['sh', '-c', 'cat; echo err >&2; exit 2'],
    })
    expect(created.status).toBe(201)
    const { Id: id } = JSON.parse(created.body) as { Id: string }
    expect(id).toMatch(/^[0-9a-f]{64}$/)

    // The client's bytes after the request are the process's stdin; its half-close is the process's EOF.
    const first = await hijack(sandbox.socketPath, id, { Detach: false, Tty: false }, 'hello')
    expect(first.head.slice(0, 4)).toEqual([
      'HTTP/1.1 101 UPGRADED',
      'Content-Type: application/vnd.docker.multiplexed-stream',
      'Connection: Upgrade',
      'Upgrade: tcp',
    ])
    expect(first.head).toEqual(expect.arrayContaining(['Api-Version: 1.47', 'Ostype: linux']))
    const frames = stdcopyFrames(first.stream)
    expect(frames.filter((f) => f.type === 1).map((f) => f.payload.toString())).toEqual(['hello'])
    expect(frames.filter((f) => f.type === 2).map((f) => f.payload.toString())).toEqual(['err\n'])
    const inspected = await api(sandbox.socketPath, 'GET', `/v1.47/exec/${id}/json`)
    expect(JSON.parse(inspected.body)).toMatchObject({ ID: id, Running: false, ExitCode: 2, OpenStdin: true })

    // A second start is refused inside the stream, as dockerd 27 does after the hijack.
    const second = await hijack(sandbox.socketPath, id, { Detach: false, Tty: false }, '')
    expect(second.head[0]).toBe('HTTP/1.1 101 UPGRADED')
    expect(stdcopyFrames(second.stream)).toEqual([
      { type: 1, payload: Buffer.from(`Error: Exec command ${id} has already run\r\n`) },
    ])

    // With a TTY the stream is raw: the terminal's bytes, no frames.
    const ttyExec = await api(sandbox.socketPath, 'POST', `/v1.47/containers/${NAME}/exec`, {
      AttachStdout: true,
      Tty: true,
      Cmd: ['echo', 'hi'],
    })
    const { Id: ttyId } = JSON.parse(ttyExec.body) as { Id: string }
    const tty = await hijack(sandbox.socketPath, ttyId, { Detach: false, Tty: true, ConsoleSize: [24, 80] }, '')
    expect(tty.head[1]).toBe('Content-Type: application/vnd.docker.raw-stream')
    expect(tty.stream.toString()).toBe('hi\r\n')

    const unknown = await api(sandbox.socketPath, 'POST', '/v1.47/exec/nope/resize?h=10&w=10')
    expect(unknown).toMatchObject({ status: 404, body: '{"message":"No such exec instance: nope"}\n' })
    const noCmd = await api(sandbox.socketPath, 'POST', `/v1.47/containers/${NAME}/exec`, { Cmd: [] })
    expect(noCmd).toMatchObject({ status: 400, body: '{"message":"No exec command specified"}\n' })
    const ping = await api(sandbox.socketPath, 'GET', '/_ping')
    expect(ping).toMatchObject({ status: 200, body: 'OK' })
    expect(ping.headers).toMatchObject({ 'api-version': '1.47', 'docker-experimental': 'false', ostype: 'linux' })
  })

  describe('faults', () => {
    it('refuses exec with the injected error', async () => {
      sandbox.faults.refuseExec = { status: 500, message: 'sandbox: exec is disabled' }
      try {
        const result = await docker(['exec', NAME, 'true'], env)
        expect(result.code).toBe(1)
        expect(result.stderr).toBe('Error response from daemon: sandbox: exec is disabled\n')
      } finally {
        sandbox.clearFaults()
      }
    })

    it('drops the stream after N bytes: the CLI sees a short, clean end (no error, exit 0)', async () => {
      sandbox.faults.dropAfterBytes = 100_000
      try {
        const result = await docker(['exec', NAME, 'sh', '-c', 'head -c 1000000 /dev/zero; sleep 1'], env)
        // stdcopy treats an end of stream between or inside frames as the end: the loss is silent, and the exec
        // (still running when the CLI asks) has no exit code yet, which the CLI reads as 0.
        expect(result.stdoutBuffer.length).toBeLessThan(100_000)
        expect(result.stdoutBuffer.length).toBeGreaterThan(50_000)
        expect(result.stderr).toBe('')
        expect(result.code).toBe(0)
      } finally {
        sandbox.clearFaults()
      }
    })

    it('refuses the upgrade: the CLI reports the status it got', async () => {
      sandbox.faults.refuseUpgrade = 403
      try {
        const result = await docker(['exec', NAME, 'true'], env)
        expect(result.code).toBe(1)
        expect(result.stderr).toContain('unable to upgrade to tcp, received 403')
      } finally {
        sandbox.clearFaults()
      }
    })
  })

  describe('container lifecycle', () => {
    it('an exec session ends with 137 when the container stops under it', async () => {
      const session = docker(['exec', NAME, 'sleep', '30'], env)
      await waitUntil(() => sandbox.engine.streamCount(sandbox.containerId) === 1, 'the exec stream')
      // This session's process: a shell left by an earlier test may still run, as it would under dockerd.
      const sleeping = () =>
        sandbox.engine
          .execInspections()
          .some((e) => e.Running === true && (e.ProcessConfig as { entrypoint: string }).entrypoint === 'sleep')
      await waitUntil(sleeping, 'the exec process to run')
      await sandbox.stopContainer()
      const result = await session
      expect(result).toMatchObject({ code: 137, stdout: '', stderr: '' })
    })

    it('docker exec into a stopped container fails like dockerd', async () => {
      expect(sandbox.container.state.status).toBe('exited')
      const result = await docker(['exec', NAME, 'true'], env)
      expect(result.code).toBe(1)
      expect(result.stdout).toBe('')
      expect(result.stderr).toBe(`Error response from daemon: container ${sandbox.containerId} is not running\n`)
      const ps = await docker(['ps', '--format', '{{.Names}}'], env)
      expect(ps.stdout).toBe('')
      const all = await docker(['ps', '-a', '--format', '{{.Names}}|{{.Status}}|{{.State}}'], env)
      expect(all.stdout).toMatch(/^management-container\|Exited \(0\) (Less than a second|\d+ seconds?) ago\|exited\n$/)
      const exited = await docker(['ps', '--filter', 'status=exited', '--format', '{{.Names}}'], env)
      expect(exited.stdout).toBe(`${NAME}\n`)
      const state = await docker(['inspect', '-f', '{{.State.Running}} {{.State.Status}} {{.State.Pid}}', NAME], env)
      expect(state.stdout).toBe('false exited 0\n')
    })

    it('docker start brings it back with new processes and the same /work, id and password', async () => {
      const password = sandbox.password
      const stopped = await docker(['stop', NAME], env)
      expect(stopped).toMatchObject({ code: 0, stdout: `${NAME}\n` })
      const started = await docker(['start', NAME], env)
      expect(started).toMatchObject({ code: 0, stdout: `${NAME}\n` })
      expect(sandbox.container.state.status).toBe('running')
      const result = await docker(
        ['exec', NAME, 'sh', '-c', 'hostname; cat /work/detached.txt /work/akamas_password'],
        env,
      )
      expect(result.stdout).toBe(`${sandbox.shortId}\ndone\n${password}\n`)
      expect(sandbox.password).toBe(password)
    })

    it('docker restart gives the container a new first process', async () => {
      const before = sandbox.container.state.pid
      const restarted = await docker(['restart', NAME], env)
      expect(restarted).toMatchObject({ code: 0, stdout: `${NAME}\n` })
      expect(sandbox.container.state.pid).not.toBe(before)
      const running = await docker(['inspect', '-f', '{{.State.Running}}', NAME], env)
      expect(running.stdout).toBe('true\n')
    })

    it('a removed container is "No such container"; a re-created one has a new id and hostname', async () => {
      const oldId = sandbox.containerId
      await sandbox.removeContainer()
      const result = await docker(['exec', NAME, 'true'], env)
      expect(result.code).toBe(1)
      expect(result.stderr).toBe(`Error response from daemon: No such container: ${NAME}\n`)
      const ps = await docker(['ps', '-a', '--format', '{{.Names}}'], env)
      expect(ps.stdout).toBe('')

      await sandbox.recreateContainer()
      expect(sandbox.containerId).not.toBe(oldId)
      const hostname = await docker(['exec', NAME, 'hostname'], env)
      expect(hostname.stdout).toBe(`${sandbox.shortId}\n`)
    })
  })
})

describe('CUSTOM_PASSWORD and ALLOW_PASSWORD=false', () => {
  let sandbox: DockerSandbox

  beforeAll(async () => {
    sandbox = await DockerSandbox.start({ allowPassword: false, customPassword: 'Custom-Pass-42' })
  })

  afterAll(async () => {
    await sandbox?.stop()
  })

  it('keeps the custom password in /work and the environment, and sshd takes keys only', async () => {
    const env = { PATH: process.env.PATH, HOME: sandbox.dir, ...sandbox.dockerEnv() }
    expect(sandbox.password).toBe('Custom-Pass-42')
    const result = await docker(
      ['exec', NAME, 'sh', '-c', 'cat /work/akamas_password; echo $CUSTOM_PASSWORD $ALLOW_PASSWORD'],
      env,
    )
    expect(result.stdout).toBe('Custom-Pass-42\nCustom-Pass-42 false\n')
    expect(sandbox.env).toEqual(expect.arrayContaining(['ALLOW_PASSWORD=false', 'CUSTOM_PASSWORD=Custom-Pass-42']))

    const byPassword = await sshHostname(await sandbox.dial(22), sandbox.hostKey.publicKey, {
      password: 'Custom-Pass-42',
    })
    expect(byPassword.ok).toBe(false)
    const byKey = await sshHostname(await sandbox.dial(22), sandbox.hostKey.publicKey, {
      privateKey: sandbox.userKey.privateKey,
    })
    expect(byKey).toEqual({ ok: true, output: `${sandbox.shortId}\n` })
  })
})

describe('DockerSandbox.stop()', () => {
  it('leaves no process, socket or file behind, even with sessions open', async () => {
    const sandbox = await DockerSandbox.start()
    const home = mkdtempSync(join(tmpdir(), 'akm-docker-home-'))
    const env = { PATH: process.env.PATH, HOME: home, ...sandbox.dockerEnv() }
    const terminal = new Terminal([DOCKER, 'exec', '-it', NAME, 'bash'], env)
    try {
      await terminal.waitFor(`akamas@${sandbox.shortId}:~$ `)
      const detached = await docker(['exec', '-d', NAME, 'sleep', '300'], env)
      expect(detached.code).toBe(0)
      const pod = sandbox.pod
      const tcpPort = Number(sandbox.tcpHost?.split(':').at(-1))
      expect((await pod.processesInNamespace()).length).toBeGreaterThan(2)

      await sandbox.stop()

      expect(await pod.processesInNamespace()).toEqual([])
      expect(existsSync(sandbox.socketPath)).toBe(false)
      expect(existsSync(sandbox.dir)).toBe(false)
      const refused = await new Promise<string>((resolve) => {
        const socket = createConnection({ host: '127.0.0.1', port: tcpPort })
        socket.on('connect', () => resolve('connected'))
        socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'))
      })
      expect(refused).toBe('ECONNREFUSED')
      // The CLI's session ended with the engine: it cannot even ask for the exit code.
      const exit = await terminal.exit()
      expect(exit.code).not.toBe(0)
    } finally {
      terminal.kill()
      await sandbox.stop()
      rmSync(home, { recursive: true, force: true })
    }
  })
})
