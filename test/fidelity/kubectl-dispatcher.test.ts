/**
 * The gcloud kubectl dispatcher picks its kubectl from the server's /version: a sandbox reporting another minor is
 * driven by that kubectl. (API server only: no pod is needed to see which kubectl answers.)
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Sandbox } from '../sandbox/index.js'
import { Scratch } from './kubectl.js'

let sandbox: Sandbox
let scratch: Scratch

beforeAll(async () => {
  sandbox = await Sandbox.start({ serverVersion: 'v1.31.2', managementPod: false })
  scratch = new Scratch()
})
afterAll(async () => {
  await scratch?.cleanup()
  await sandbox?.stop()
})

it('asks /version first, then runs kubectl 1.31 for a server reporting v1.31.2', async () => {
  const from = sandbox.requests.length
  const result = await scratch.kubectl(sandbox.kubeconfigPath, ['get', 'secrets', '-o', 'name'])
  expect(result).toMatchObject({ code: 0, stdout: 'secret/management-pod\n' })
  const requests = sandbox.requests.slice(from)
  expect(requests[0]).toMatchObject({
    path: '/version?timeout=5s',
    userAgent: expect.stringMatching(/^kubectl-dispatcher\//),
  })
  expect(requests.at(-1)?.userAgent).toMatch(/^kubectl\/v1\.31\./)
})

it('reports the server version kubectl expects; marked no-cache, it is asked for again on every call', async () => {
  const cacheDir = scratch.cacheDir()
  const first = await scratch.kubectl(sandbox.kubeconfigPath, ['version', '-o', 'json'], { cacheDir })
  const version = JSON.parse(first.stdout) as { serverVersion: Record<string, string> }
  expect(version.serverVersion).toMatchObject({
    major: '1',
    minor: '31',
    gitVersion: 'v1.31.2',
    platform: 'linux/amd64',
  })
  // kube-apiserver's WithCacheControl marks every answer `Cache-Control: no-cache, private`, so the dispatcher's HTTP
  // cache in --cache-dir cannot answer /version by itself: each call asks again.
  const from = sandbox.requests.length
  await scratch.kubectl(sandbox.kubeconfigPath, ['get', 'secrets', '-o', 'name'], { cacheDir })
  const versionRequests = sandbox.requests.slice(from).filter((r) => r.userAgent?.startsWith('kubectl-dispatcher/'))
  expect(versionRequests.map((r) => r.path)).toEqual(['/version?timeout=5s'])
})
