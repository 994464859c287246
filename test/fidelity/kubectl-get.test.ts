/**
 * Fidelity of the sandbox's REST side, proven with the real kubectl (the gcloud dispatcher, which picks kubectl 1.32
 * from the sandbox's /version): Table output for pods, secrets, services and deployments, jsonpath, the Secret's
 * password, error Status objects (401, 403, 404), SelfSubjectAccessReview, and the kubeconfig auth variants.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { Sandbox } from '../sandbox/index.js'
import { humanDuration } from '../sandbox/resources.js'
import { Scratch, tableRows } from './kubectl.js'

let sandbox: Sandbox
let scratch: Scratch
/** Pods of the scratch namespace, where the status-column tests put their pods (kept apart from the real one). */
const SCRATCH_NS = 'scratch'
const scratchPods: string[] = []

beforeAll(async () => {
  sandbox = await Sandbox.start()
  scratch = new Scratch()
})
afterEach(async () => {
  sandbox.allowAll()
  sandbox.clearFaults()
  await scratch.killAll()
  for (const name of scratchPods.splice(0)) await sandbox.deletePod(name, SCRATCH_NS)
})
afterAll(async () => {
  await scratch?.cleanup()
  await sandbox?.stop()
})

const kubectl = (args: string[], options: Parameters<Scratch['kubectl']>[2] = {}) =>
  scratch.kubectl(sandbox.kubeconfigPath, args, options)

/** The AGE of something made by this file: seconds, or minutes on a slow machine. */
const RECENT = expect.stringMatching(/^(\d+s|\d+m(\d+s)?)$/)
const HOUR = 3_600_000
const DAY = 24 * HOUR

describe('kubectl get pods', () => {
  it('prints the Table columns NAME READY STATUS RESTARTS AGE for the management pod', async () => {
    const result = await kubectl(['get', 'pods', '-l', 'app=management-pod'])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const [header, ...rows] = tableRows(result.stdout)
    expect(header).toEqual(['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'])
    expect(rows).toHaveLength(1)
    expect(rows[0]).toEqual([sandbox.currentPodName, '1/1', 'Running', '0', RECENT])
    // The Table came from the server (a plain PodList would print only NAME and AGE).
    const list = sandbox.requests.filter((r) => r.path.startsWith(`/api/v1/namespaces/${sandbox.namespace}/pods?`))
    expect(list.at(-1)?.path).toBe(
      `/api/v1/namespaces/${sandbox.namespace}/pods?labelSelector=app%3Dmanagement-pod&limit=500`,
    )
  })

  it('adds IP, NODE, NOMINATED NODE and READINESS GATES with -o wide', async () => {
    const result = await kubectl(['get', 'pods', '-l', 'app=management-pod', '-o', 'wide'])
    expect(result.code).toBe(0)
    const [header, row] = tableRows(result.stdout)
    expect(header).toEqual([
      'NAME',
      'READY',
      'STATUS',
      'RESTARTS',
      'AGE',
      'IP',
      'NODE',
      'NOMINATED NODE',
      'READINESS GATES',
    ])
    expect(row).toEqual([
      sandbox.currentPodName,
      '1/1',
      'Running',
      '0',
      RECENT,
      '10.244.0.10',
      'sandbox-node',
      '<none>',
      '<none>',
    ])
  })

  it('shows a starting pod as ContainerCreating and a crashing one as CrashLoopBackOff with its last restart', async () => {
    const creating = await sandbox.addPod({ namespace: SCRATCH_NS, name: 'creating-0', phase: 'Pending' })
    const crashing = await sandbox.addPod({
      namespace: SCRATCH_NS,
      name: 'crashing-0',
      phase: 'Running',
      ready: false,
      waitingReason: 'CrashLoopBackOff',
      restartCount: 5,
      lastTerminationReason: 'Error',
      lastTerminationAt: new Date(Date.now() - 3 * HOUR - 20_000),
    })
    scratchPods.push(creating, crashing)
    const result = await kubectl(['get', 'pods', '-n', SCRATCH_NS])
    expect(result.code).toBe(0)
    const rows = tableRows(result.stdout).slice(1)
    expect(rows).toEqual([
      ['crashing-0', '0/1', 'CrashLoopBackOff', '5 (3h ago)', RECENT],
      ['creating-0', '0/1', 'ContainerCreating', '0', RECENT],
    ])
  })

  it('shows a pod being deleted as Terminating', async () => {
    const name = await sandbox.addPod({ namespace: SCRATCH_NS, name: 'leaving-0' })
    scratchPods.push(name)
    const before = await kubectl(['get', 'pod', name, '-n', SCRATCH_NS, '--no-headers'])
    expect(tableRows(before.stdout)[0]?.[2]).toBe('Running')
    sandbox.markTerminating(name, SCRATCH_NS)
    const after = await kubectl(['get', 'pod', name, '-n', SCRATCH_NS, '--no-headers'])
    expect(tableRows(after.stdout)[0]?.slice(0, 3)).toEqual([name, '1/1', 'Terminating'])
  })

  it('renders AGE exactly as kubectl renders it itself (duration.HumanDuration)', async () => {
    // --server-print=false makes kubectl fetch plain objects and compute AGE on its own: the oracle.
    const ages = [4 * HOUR + 30 * 60_000, 2 * DAY + 5 * HOUR, 40 * DAY, (3 * 365 + 10) * DAY, 3 * 60_000 + 1_000]
    for (const [index, ageMs] of ages.entries()) {
      const name = await sandbox.addPod({
        namespace: SCRATCH_NS,
        name: `aged-${index}`,
        phase: 'Pending',
        createdAt: new Date(Date.now() - ageMs - 20_000),
      })
      scratchPods.push(name)
    }
    const server = await kubectl(['get', 'pods', '-n', SCRATCH_NS, '--no-headers'])
    const client = await kubectl(['get', 'pods', '-n', SCRATCH_NS, '--no-headers', '--server-print=false'])
    const age = (text: string) => Object.fromEntries(tableRows(text).map((cells) => [cells[0], cells.at(-1)]))
    // Ages that move by the second (the 3m… one) may tick between the two calls; compare the others exactly.
    const serverAges = age(server.stdout)
    const clientAges = age(client.stdout)
    expect(serverAges['aged-0']).toBe('4h30m')
    expect(serverAges['aged-1']).toBe('2d5h')
    expect(serverAges['aged-2']).toBe('40d')
    expect(serverAges['aged-3']).toBe('3y10d')
    for (const name of ['aged-0', 'aged-1', 'aged-2', 'aged-3']) expect(serverAges[name]).toBe(clientAges[name])
    expect(serverAges['aged-4']).toMatch(/^3m[2-5]\ds$/)
    expect(clientAges['aged-4']).toMatch(/^3m[2-5]\ds$/)
  })

  it('prints only the names with -o jsonpath={.items[*].metadata.name}', async () => {
    const result = await kubectl([
      'get',
      'pods',
      '-l',
      'app=management-pod',
      '-o',
      'jsonpath={.items[*].metadata.name}',
    ])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(sandbox.podNames().join(' '))
    // jsonpath asks for plain JSON, not a Table.
    expect(sandbox.requests.at(-1)?.path).toContain('/pods?labelSelector=')
  })

  it('lists across namespaces with -A, with the NAMESPACE column kubectl adds', async () => {
    const name = await sandbox.addPod({ namespace: SCRATCH_NS, name: 'elsewhere-0', phase: 'Pending' })
    scratchPods.push(name)
    const result = await kubectl(['get', 'pods', '-A'])
    expect(result.code).toBe(0)
    const [header, ...rows] = tableRows(result.stdout)
    expect(header).toEqual(['NAMESPACE', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'])
    expect(rows.map((row) => `${row[0]}/${row[1]}`)).toEqual(
      [`${sandbox.namespace}/${sandbox.currentPodName}`, `${SCRATCH_NS}/elsewhere-0`].sort(),
    )
  })
})

describe('kubectl get secrets, services, deployments', () => {
  it('reads the password from the Secret: jsonpath then base64 -d gives sandbox.password', async () => {
    const script = `kubectl --cache-dir '${scratch.cacheDir()}' get secret management-pod -o jsonpath='{.data.password}' | base64 -d`
    const result = await scratch.run('sh', ['-c', script], { env: scratch.env(sandbox.kubeconfigPath) })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(sandbox.password)
  })

  it('lists secrets with NAME TYPE DATA AGE', async () => {
    const result = await kubectl(['get', 'secrets'])
    expect(result.code).toBe(0)
    const [header, ...rows] = tableRows(result.stdout)
    expect(header).toEqual(['NAME', 'TYPE', 'DATA', 'AGE'])
    expect(rows).toEqual([['management-pod', 'Opaque', '3', RECENT]])
  })

  it('shows the management-pod Service', async () => {
    const result = await kubectl(['get', 'svc', 'management-pod', '-o', 'wide'])
    expect(result.code).toBe(0)
    const [header, row] = tableRows(result.stdout)
    expect(header).toEqual(['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE', 'SELECTOR'])
    expect(row).toEqual([
      'management-pod',
      'ClusterIP',
      '10.96.0.22',
      '<none>',
      '22/TCP',
      RECENT,
      'app=management-pod,app.kubernetes.io/name=management-pod',
    ])
  })

  it('shows the Deployment with READY UP-TO-DATE AVAILABLE counted from its pods', async () => {
    const result = await kubectl(['get', 'deploy'])
    expect(result.code).toBe(0)
    const [header, ...rows] = tableRows(result.stdout)
    expect(header).toEqual(['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE'])
    expect(rows).toEqual([['management-pod', '1/1', '1', '1', RECENT]])
    const wide = await kubectl(['get', 'deployment', 'management-pod', '-o', 'wide', '--no-headers'])
    expect(tableRows(wide.stdout)[0]?.slice(5)).toEqual([
      'management-pod',
      'akamas/management-container:sandbox',
      'app=management-pod,app.kubernetes.io/name=management-pod',
    ])
  })
})

describe('errors, as kubectl prints them', () => {
  it('a wrong token: "You must be logged in" (from discovery on a cold cache, from the Status on a warm one)', async () => {
    const wrong = sandbox.writeKubeconfig({ token: 'not-the-token' })
    const cold = await scratch.kubectl(wrong, ['get', 'pods'])
    expect(cold.code).toBe(1)
    expect(cold.stderr).toContain(
      'error: You must be logged in to the server (the server has asked for the client to provide credentials)',
    )
    // With discovery (and the server version) cached by an earlier good run, the request itself gets the 401 Status.
    const cacheDir = scratch.cacheDir()
    expect((await kubectl(['get', 'pods'], { cacheDir })).code).toBe(0)
    const warm = await scratch.kubectl(wrong, ['get', 'pods'], { cacheDir })
    expect(warm.code).toBe(1)
    expect(warm.stderr.trim()).toBe('error: You must be logged in to the server (Unauthorized)')
  })

  it('a wrong token is refused on /version too (only a request without credentials is anonymous)', async () => {
    const wrong = sandbox.writeKubeconfig({ token: 'not-the-token' })
    const result = await scratch.kubectl(wrong, ['version', '-o', 'json'])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('error: You must be logged in to the server')
    const record = sandbox.requests.filter((r) => r.path.startsWith('/version')).at(-1)
    expect(record?.user).toBeUndefined()
  })

  it('RBAC: a denied get on secrets is 403 with the apiserver’s exact wording', async () => {
    sandbox.deny({ verb: 'get', resource: 'secrets' })
    const result = await kubectl(['get', 'secret', 'management-pod'])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe(
      `Error from server (Forbidden): secrets "management-pod" is forbidden: User "sandbox-admin" cannot get resource "secrets" in API group "" in the namespace "${sandbox.namespace}"`,
    )
  })

  it('RBAC: a denied list at the cluster scope says so', async () => {
    sandbox.deny({ verb: 'list', resource: 'pods' })
    const result = await kubectl(['get', 'pods', '-A'])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe(
      'Error from server (Forbidden): pods is forbidden: User "sandbox-admin" cannot list resource "pods" in API group "" at the cluster scope',
    )
  })

  it('a missing secret is 404 NotFound', async () => {
    const result = await kubectl(['get', 'secret', 'nope'])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('Error from server (NotFound): secrets "nope" not found')
  })

  it('a missing deployment names its group in the NotFound', async () => {
    const result = await kubectl(['get', 'deploy', 'nope'])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('Error from server (NotFound): deployments.apps "nope" not found')
  })

  it('kubectl auth can-i answers yes, then no once a rule denies it', async () => {
    const allowed = await kubectl(['auth', 'can-i', 'get', 'secrets'])
    expect(allowed).toMatchObject({ code: 0, stdout: 'yes\n' })
    sandbox.deny({ verb: 'get', resource: 'secrets' })
    const denied = await kubectl(['auth', 'can-i', 'get', 'secrets'])
    expect(denied).toMatchObject({ code: 1, stdout: 'no\n' })
    // Subresources too: what the exec fallback needs (create pods/exec).
    sandbox.deny({ verb: 'create', resource: 'pods/exec' })
    expect((await kubectl(['auth', 'can-i', 'create', 'pods', '--subresource=exec'])).stdout).toBe('no\n')
    expect((await kubectl(['auth', 'can-i', 'get', 'pods', '--subresource=exec'])).stdout).toBe('yes\n')
  })
})

describe('other API paths', () => {
  it('kubectl auth whoami: the user and groups the authenticator sees', async () => {
    const result = await kubectl(['auth', 'whoami'])
    expect(result.code).toBe(0)
    expect(tableRows(result.stdout)).toEqual([
      ['ATTRIBUTE', 'VALUE'],
      ['Username', 'sandbox-admin'],
      ['Groups', '[system:authenticated]'],
    ])
    const certificate = sandbox.writeKubeconfig({ auth: 'client-certificate' })
    const viaCertificate = await scratch.kubectl(certificate, ['auth', 'whoami'])
    expect(tableRows(viaCertificate.stdout).slice(1)).toEqual([
      ['Username', sandbox.pki.clientUser],
      ['Groups', '[system:masters system:authenticated]'],
    ])
  })

  it('a method a served resource does not allow is 405; a path the server does not serve is 404', async () => {
    const body = join(scratch.dir, 'empty.json')
    writeFileSync(body, '{}')
    const post = await kubectl(['create', '--raw', `/api/v1/namespaces/${sandbox.namespace}/secrets`, '-f', body])
    expect(post.stderr.trim()).toBe(
      'Error from server (MethodNotAllowed): the server does not allow this method on the requested resource',
    )
    const unknown = await kubectl(['create', '--raw', '/apis/example.com/v1/things', '-f', body])
    expect(unknown.stderr.trim()).toBe('Error from server (NotFound): the server could not find the requested resource')
  })

  it('kubectl get -w: the list, then one line per change (ADDED, MODIFIED, DELETED) from the watch', async () => {
    const first = await sandbox.addPod({ namespace: SCRATCH_NS, name: 'watched-0', phase: 'Pending' })
    scratchPods.push(first)
    const from = sandbox.requests.length
    const watch = scratch.start(sandbox.kubeconfigPath, [
      'get',
      'pods',
      '-n',
      SCRATCH_NS,
      '-w',
      '--output-watch-events',
    ])
    await watch.waitFor(/ADDED\s+watched-0\s+0\/1\s+ContainerCreating/)
    // kubectl lists, then watches from the list's resourceVersion: nothing is replayed twice.
    await vi.waitFor(() => expect(sandbox.requests.slice(from).some((r) => r.path.includes('watch=true'))).toBe(true))
    const watchRequest = sandbox.requests.slice(from).find((r) => r.path.includes('watch=true'))
    expect(watchRequest?.path).toMatch(
      new RegExp(`^/api/v1/namespaces/${SCRATCH_NS}/pods\\?resourceVersion=\\d+&watch=true$`),
    )
    const second = await sandbox.addPod({ namespace: SCRATCH_NS, name: 'watched-1', phase: 'Pending' })
    scratchPods.push(second)
    await watch.waitFor(/ADDED\s+watched-1\s+0\/1\s+ContainerCreating/)
    sandbox.markTerminating(first, SCRATCH_NS)
    await watch.waitFor(/MODIFIED\s+watched-0\s+0\/1\s+Terminating/)
    await sandbox.deletePod(first, SCRATCH_NS)
    await watch.waitFor(/DELETED\s+watched-0\s+0\/1\s+Terminating/)
    const lines = tableRows(watch.stdout())
    expect(lines[0]).toEqual(['EVENT', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'])
    expect(lines.slice(1).map((cells) => `${cells[0]} ${cells[1]} ${cells[3]}`)).toEqual([
      'ADDED watched-0 ContainerCreating',
      'ADDED watched-1 ContainerCreating',
      'MODIFIED watched-0 Terminating',
      'DELETED watched-0 Terminating',
    ])
  })

  it('kubectl get pod NAME -w follows that pod only (fieldSelector metadata.name)', async () => {
    const name = await sandbox.addPod({ namespace: SCRATCH_NS, name: 'followed-0', phase: 'Pending' })
    scratchPods.push(name)
    const watch = scratch.start(sandbox.kubeconfigPath, ['get', 'pod', name, '-n', SCRATCH_NS, '-w'])
    await watch.waitFor(/followed-0\s+0\/1\s+ContainerCreating/)
    scratchPods.push(await sandbox.addPod({ namespace: SCRATCH_NS, name: 'other-0', phase: 'Pending' }))
    sandbox.markTerminating(name, SCRATCH_NS)
    await watch.waitFor(/followed-0\s+0\/1\s+Terminating/)
    expect(watch.stdout()).not.toContain('other-0')
    expect(sandbox.requests.some((r) => r.path.includes('fieldSelector=metadata.name%3Dfollowed-0'))).toBe(true)
  })
})

describe('a rollout, as kubectl sees it', () => {
  it('kubectl get deploy -w shows the surge and the settling; the pods list shows the new pod', async () => {
    const watch = scratch.start(sandbox.kubeconfigPath, ['get', 'deploy', 'management-pod', '-w'])
    await watch.waitFor(/management-pod\s+1\/1\s+1\s+1\s/s)
    const { oldPods, newPod } = await sandbox.rollout()
    // The new pod starts before the old one goes: two ready pods for a moment, then one, up to date.
    await watch.waitFor(/management-pod\s+2\/1\s+1\s+2\s.*management-pod\s+1\/1\s+1\s+1\s/s)
    const pods = await kubectl(['get', 'pods', '-o', 'name'])
    expect(pods.stdout).toBe(`pod/${newPod}\n`)
    expect(oldPods).not.toContain(newPod)
  })
})

describe('kubeconfig credentials', () => {
  it('a client certificate: the server authenticates its CN', async () => {
    const kubeconfig = sandbox.writeKubeconfig({ auth: 'client-certificate' })
    const result = await scratch.kubectl(kubeconfig, ['get', 'pods', '-l', 'app=management-pod', '-o', 'name'])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`pod/${sandbox.currentPodName}\n`)
    const users = new Set(sandbox.requests.slice(-3).map((r) => r.user))
    expect(users).toEqual(new Set([sandbox.pki.clientUser]))
  })

  it('an exec credential plugin: kubectl runs it and sends its token', async () => {
    const kubeconfig = sandbox.writeKubeconfig({ auth: 'exec' })
    const result = await scratch.kubectl(kubeconfig, ['get', 'pods', '-l', 'app=management-pod', '-o', 'name'])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`pod/${sandbox.currentPodName}\n`)
    expect(sandbox.requests.at(-1)?.user).toBe('exec-user')
  })

  it('without the CA, kubectl refuses the sandbox’s certificate', async () => {
    const kubeconfig = sandbox.writeKubeconfig({ withoutCa: true })
    const result = await scratch.kubectl(kubeconfig, ['get', 'pods'])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('x509: certificate signed by unknown authority')
  })
})

describe('duration.HumanDuration', () => {
  it('matches the Go implementation at its boundaries', () => {
    const s = 1000
    const m = 60 * s
    const cases: [number, string][] = [
      [-2 * s, '<invalid>'],
      [-1 * s, '0s'],
      [0, '0s'],
      [119 * s, '119s'],
      [2 * m, '2m'],
      [2 * m + 5 * s, '2m5s'],
      [9 * m + 59 * s, '9m59s'],
      [10 * m + 30 * s, '10m'],
      [179 * m, '179m'],
      [3 * HOUR, '3h'],
      [7 * HOUR + 59 * m, '7h59m'],
      [8 * HOUR + 30 * m, '8h'],
      [47 * HOUR, '47h'],
      [2 * DAY, '2d'],
      [7 * DAY + 23 * HOUR, '7d23h'],
      [8 * DAY + 5 * HOUR, '8d'],
      [729 * DAY, '729d'],
      [730 * DAY, '2y'],
      [(3 * 365 + 10) * DAY, '3y10d'],
      [8 * 365 * DAY + 40 * DAY, '8y'],
    ]
    for (const [ms, text] of cases) expect(humanDuration(ms), `${ms} ms`).toBe(text)
  })
})
