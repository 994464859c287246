/**
 * `npm run bench`: akm-access side by side with what users type today (kubectl, OpenSSH), on the sandbox of this
 * machine, at loopback and behind a 50 ms round-trip proxy in front of the API server. Writes bench/results.md and
 * bench/results.svg (BENCH_RESULTS names others). Every Node process, ours and `node -e 0`, runs on the Node that
 * runs this script: `npm run bench:node24` measures the same on Node 24. Not part of `npm test`: absolute times on
 * a shared machine are noise, ratios are the result.
 */
import { execFile, execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { cliEnv, cliPath } from '../test/helpers/cli.js'
import { Sandbox } from '../test/sandbox/index.js'
import { renderChart } from './lib/chart.js'
import { startLatencyProxy } from './lib/latency-proxy.js'
import { alternate, type Case, echoRoundTrip, type Stats, timeProcess, timeToPrompt } from './lib/measure.js'

const execFileAsync = promisify(execFile)
const runs = Number(process.env.BENCH_RUNS ?? 12)
const warmup = Number(process.env.BENCH_WARMUP ?? 2)
/** bench/<name>.md and .svg: `npm run bench:node24` keeps its own. */
const resultsName = process.env.BENCH_RESULTS ?? 'results'
const prompt = /\$ $/m
const node = process.execPath
const akm = [node, cliPath]

interface Figure {
  title: string
  /** What the targets compare: the akm-access case and its peer. */
  target?: { ours: string; peer: string; max: number; label: string }[]
  results: Map<string, Stats>
  commands: Map<string, string>
  unit: string
}

const figures: Figure[] = []
/** Figures measured elsewhere (bench/throughput.ts) and folded into the report. */
const extraSections: string[] = []
const extraVerdicts: { label: string; ratio: number; max: number }[] = []

async function figure(title: string, cases: Case[], target?: Figure['target'], unit = 'ms'): Promise<void> {
  process.stderr.write(`bench: ${title}…\n`)
  const results = await alternate(cases, { warmup, runs })
  figures.push({ title, results, commands: new Map(cases.map((c) => [c.name, c.command])), target, unit })
}

const sandbox = await Sandbox.start()
try {
  const pod = sandbox.currentPodName
  const sshPort = sandbox.runtime(pod).sshPort!
  const work = mkdtempSync(join(tmpdir(), 'akm-bench-'))
  const kubectlCache = join(work, 'kube-cache')
  const proxy = await startLatencyProxy(Number(new URL(sandbox.url).port), 50)
  const farKubeconfig = sandbox.writeKubeconfig({ server: `https://127.0.0.1:${proxy.port}`, path: join(work, 'far') })

  // The user's own environment (NODE_EXTRA_CA_CERTS and the like cost every Node program its share), with a HOME
  // of its own so that caches and known_hosts start the same for every case.
  const envFor = (kubeconfig: string) => ({
    ...process.env,
    ...cliEnv(kubeconfig, { TERM: 'xterm-256color', KUBECACHEDIR: kubectlCache }),
    NO_COLOR: '1',
  })
  const near = envFor(sandbox.kubeconfigPath)
  const far = envFor(farKubeconfig)
  // akm-access trusts the host key once, as a person would on first use.
  // (Asynchronously: the sandbox runs in this process, a synchronous child would deadlock it.)
  for (const env of [near, far]) {
    await execFileAsync(node, [cliPath, 'ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], { env })
  }

  // OpenSSH straight to the pod's sshd: the floor.
  const knownHosts = join(work, 'known_hosts')
  writeFileSync(knownHosts, `[127.0.0.1]:${sshPort} ${sandbox.hostKey.publicKey}\n`)
  const sshDirect = [
    'ssh',
    '-tt',
    '-i',
    sandbox.userKey.path,
    '-p',
    String(sshPort),
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    'akamas@127.0.0.1',
  ]

  // The manual flow users follow today, scripted: read the password, port-forward, ssh, answer the questions.
  const passwordFile = join(work, 'password')
  const askpass = join(work, 'askpass.sh')
  writeFileSync(askpass, `#!/bin/sh\ncat '${passwordFile}'\n`, { mode: 0o700 })
  const manualFlow = join(work, 'manual-flow.sh')
  writeFileSync(
    manualFlow,
    [
      '#!/bin/bash',
      'set -e',
      `kubectl get secret management-pod -o jsonpath='{.data.password}' | base64 -d > '${passwordFile}'`,
      `chmod 600 '${passwordFile}'`,
      `log=$(mktemp); kubectl port-forward pod/${pod} :22 > "$log" 2>&1 & pf=$!`,
      'trap "kill $pf 2>/dev/null" EXIT',
      'until grep -q "Forwarding from 127.0.0.1" "$log"; do sleep 0.01; done',
      'port=$(sed -n "s/^Forwarding from 127.0.0.1:\\([0-9]*\\).*/\\1/p" "$log" | head -1)',
      `SSH_ASKPASS='${askpass}' SSH_ASKPASS_REQUIRE=force ssh -tt -p "$port" -o UserKnownHostsFile=$(mktemp) ` +
        '-o StrictHostKeyChecking=accept-new -o PubkeyAuthentication=no akamas@127.0.0.1',
      '',
    ].join('\n'),
  )
  chmodSync(manualFlow, 0o755)

  await figure(
    '`--help` cold start',
    [
      { name: 'node -e 0', command: 'node -e 0', run: timeProcess([node, '-e', '0'], near) },
      { name: 'akm-access --help', command: 'akm-access --help', run: timeProcess([...akm, '--help'], near) },
      { name: 'kubectl --help', command: 'kubectl --help', run: timeProcess(['kubectl', '--help'], near) },
    ],
    [{ ours: 'akm-access --help', peer: 'node -e 0', max: 1.3, label: '--help vs node -e 0' }],
  )

  for (const [where, env, maxRatio] of [
    ['loopback', near, 1.2],
    ['50 ms RTT', far, 1.0],
  ] as const) {
    await figure(
      `password (${where})`,
      [
        { name: 'akm-access password', command: 'akm-access password', run: timeProcess([...akm, 'password'], env) },
        {
          name: 'kubectl get secret | base64 -d',
          command: "kubectl get secret management-pod -o jsonpath='{.data.password}' | base64 -d",
          run: timeProcess(["kubectl get secret management-pod -o jsonpath='{.data.password}' | base64 -d"], env, true),
        },
      ],
      [
        {
          ours: 'akm-access password',
          peer: 'kubectl get secret | base64 -d',
          max: maxRatio,
          label: `password, ${where}`,
        },
      ],
    )
  }

  for (const [where, env, maxRatio] of [
    ['loopback', near, 1.2],
    ['50 ms RTT', far, 0.8],
  ] as const) {
    await figure(
      `shell: time to prompt (${where})`,
      [
        { name: 'akm-access shell', command: 'akm-access shell', run: timeToPrompt([...akm, 'shell'], env, prompt) },
        {
          name: 'kubectl exec -it',
          command: 'kubectl exec -it deploy/management-pod -- bash',
          run: timeToPrompt(['kubectl', 'exec', '-it', 'deploy/management-pod', '--', 'bash'], env, prompt),
        },
      ],
      [{ ours: 'akm-access shell', peer: 'kubectl exec -it', max: maxRatio, label: `shell to prompt, ${where}` }],
    )
  }

  await figure(
    'ssh: time to prompt (loopback)',
    [
      {
        name: 'akm-access ssh',
        command: 'akm-access ssh',
        run: timeToPrompt([...akm, 'ssh', '--port', '0'], near, prompt),
      },
      {
        name: 'manual flow',
        command: `${manualFlow} (get secret, port-forward, ssh)`,
        run: timeToPrompt([manualFlow], near, prompt),
      },
      { name: 'ssh straight to sshd', command: sshDirect.join(' '), run: timeToPrompt(sshDirect, near, prompt) },
    ],
    [
      { ours: 'akm-access ssh', peer: 'manual flow', max: 0.5, label: 'ssh to prompt vs manual flow' },
      { ours: 'akm-access ssh', peer: 'ssh straight to sshd', max: 1.1, label: 'ssh to prompt vs OpenSSH direct' },
    ],
  )

  await figure(
    'ssh: time to prompt (50 ms RTT to the API server)',
    [
      {
        name: 'akm-access ssh',
        command: 'akm-access ssh',
        run: timeToPrompt([...akm, 'ssh', '--port', '0'], far, prompt),
      },
      { name: 'manual flow', command: `${manualFlow}`, run: timeToPrompt([manualFlow], far, prompt) },
    ],
    [{ ours: 'akm-access ssh', peer: 'manual flow', max: 0.5, label: 'ssh to prompt vs manual flow, 50 ms RTT' }],
  )

  process.stderr.write('bench: echo round trip…\n')
  const echo = new Map<string, Stats>()
  const echoCommands = new Map<string, string>([
    ['akm-access shell', 'akm-access shell'],
    ['kubectl exec -it', 'kubectl exec -it deploy/management-pod -- bash'],
    ['akm-access ssh', 'akm-access ssh'],
    ['ssh straight to sshd', sshDirect.join(' ')],
  ])
  echo.set('akm-access shell', await echoRoundTrip([...akm, 'shell'], near, prompt))
  echo.set(
    'kubectl exec -it',
    await echoRoundTrip(['kubectl', 'exec', '-it', 'deploy/management-pod', '--', 'bash'], near, prompt),
  )
  echo.set('akm-access ssh', await echoRoundTrip([...akm, 'ssh', '--port', '0'], near, prompt))
  echo.set('ssh straight to sshd', await echoRoundTrip(sshDirect, near, prompt))
  figures.push({
    title: 'echo round trip of a typed line (loopback)',
    results: echo,
    commands: echoCommands,
    unit: 'ms',
    target: [
      { ours: 'akm-access ssh', peer: 'ssh straight to sshd', max: 1.3, label: 'echo round trip vs ssh direct' },
    ],
  })

  await proxy.close()
  await throughputFigures(work)
  writeReport()
} finally {
  await sandbox.stop()
}

/**
 * Bulk transfer through akm-access forward, kubectl port-forward and straight to sshd, and the tunnels' peak RSS:
 * bench/throughput.ts, in a process of its own (it runs its own sandbox), folded into this report.
 */
async function throughputFigures(work: string): Promise<void> {
  process.stderr.write('bench: throughput and peak RSS (256 MiB each way)…\n')
  const out = join(work, 'throughput.json')
  await execFileAsync(node, ['--import', 'tsx', join(import.meta.dirname, 'throughput.ts'), '--json-out', out], {
    maxBuffer: 1 << 24,
  })
  const result = JSON.parse(readFileSync(out, 'utf8')) as {
    table: string
    paths: Record<string, { up: number; down: number; peakRssMiB: number }>
  }
  const forward = result.paths['akm-access forward']!
  const direct = result.paths['direct (floor)']!
  extraSections.push(`## Bulk throughput and peak RSS\n\n${result.table}\n`)
  // As times (lower is better), like every other figure: direct's rate over ours; the target throughput >= 0.9x is
  // a time ratio <= 1/0.9.
  extraVerdicts.push(
    { label: 'upload time vs direct (throughput >= 0.9x)', ratio: direct.up / forward.up, max: 1 / 0.9 },
    { label: 'download time vs direct (throughput >= 0.9x)', ratio: direct.down / forward.down, max: 1 / 0.9 },
    { label: 'forward peak RSS vs 72 MiB', ratio: forward.peakRssMiB / 72, max: 1 },
  )
}

function versions(): string[] {
  const run = (argv: string[]) => {
    try {
      return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
    } catch (error) {
      return String((error as { stderr?: string }).stderr ?? error).trim()
    }
  }
  return [
    `- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${process.platform} ${process.arch}`,
    `- node ${process.version}; kubectl ${run(['/usr/lib/google-cloud-sdk/bin/kubectl.1.32', 'version', '--client', '-o', 'json']).match(/"gitVersion":\s*"([^"]+)"/)?.[1] ?? '?'} (through the /usr/bin/kubectl dispatcher)`,
    `- ${execFileSync('sh', ['-c', 'ssh -V 2>&1'], { encoding: 'utf8' }).trim()}`,
    `- sandbox Kubernetes API v1.32.4; ${warmup} warm-up rounds, ${runs} alternating runs per case`,
  ]
}

function writeReport(): void {
  const lines = [
    '# akm-access benchmark',
    '',
    `Run on ${new Date().toISOString()} by \`npm run bench\`.`,
    '',
    ...versions(),
    '',
  ]
  const verdicts: { label: string; ratio: number; max: number }[] = []
  for (const fig of figures) {
    lines.push(`## ${fig.title}`, '', `| case | median | min | max | command |`, '|---|---|---|---|---|')
    for (const [name, s] of fig.results) {
      lines.push(
        `| ${name} | ${s.median.toFixed(1)} ${fig.unit} | ${s.min.toFixed(1)} | ${s.max.toFixed(1)} | \`${fig.commands.get(name) ?? ''}\` |`,
      )
    }
    for (const target of fig.target ?? []) {
      const ratio = fig.results.get(target.ours)!.median / fig.results.get(target.peer)!.median
      verdicts.push({ label: target.label, ratio, max: target.max })
      lines.push(
        '',
        `Ratio ${target.ours} / ${target.peer}: **${ratio.toFixed(2)}×** (target ≤ ${+target.max.toFixed(2)}×: ${ratio <= target.max ? 'met' : 'missed'})`,
      )
    }
    lines.push('')
  }
  lines.push(...extraSections)
  verdicts.push(...extraVerdicts)
  lines.push('## Targets', '', '| figure | ratio | target | |', '|---|---|---|---|')
  for (const v of verdicts)
    lines.push(
      `| ${v.label} | ${v.ratio.toFixed(2)}× | ≤ ${+v.max.toFixed(2)}× | ${v.ratio <= v.max ? 'met' : 'missed'} |`,
    )
  lines.push('', `![ratios](${resultsName}.svg)`, '')
  const out = resolve(import.meta.dirname)
  writeFileSync(join(out, `${resultsName}.md`), lines.join('\n'))
  writeFileSync(join(out, `${resultsName}.svg`), renderChart(verdicts))
  process.stdout.write(`${lines.join('\n')}\n`)
}
