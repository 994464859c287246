import type { V1Pod } from '@kubernetes/client-node'
import { describe, expect, it } from 'vitest'
import { chooseContainer, choosePod, describeNotReady, summarizePod, workloadOf } from '../../src/target/select-pod.js'

interface PodInput {
  name: string
  rs?: string
  hash?: string
  created: string
  phase?: string
  ready?: boolean
  waiting?: string
  terminating?: boolean
  restarts?: number
  lastTermination?: string
  containers?: string[]
}

function pod(input: PodInput): V1Pod {
  const containers = input.containers ?? ['management-pod']
  return {
    metadata: {
      name: input.name,
      namespace: 'akamas',
      uid: `uid-${input.name}`,
      creationTimestamp: new Date(input.created),
      labels: input.hash ? { 'pod-template-hash': input.hash } : {},
      ...(input.rs
        ? {
            ownerReferences: [
              { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: input.rs, uid: 'x', controller: true },
            ],
          }
        : {}),
      ...(input.terminating ? { deletionTimestamp: new Date(input.created) } : {}),
    },
    spec: { containers: containers.map((name) => ({ name })) },
    status: {
      phase: input.phase ?? 'Running',
      conditions: [{ type: 'Ready', status: input.ready === false ? 'False' : 'True' }],
      containerStatuses: containers.map((name) => ({
        name,
        ready: input.ready !== false,
        restartCount: input.restarts ?? 0,
        image: 'x',
        imageID: 'x',
        state: input.waiting ? { waiting: { reason: input.waiting } } : { running: {} },
        ...(input.lastTermination ? { lastState: { terminated: { reason: input.lastTermination, exitCode: 1 } } } : {}),
      })),
    },
  } as V1Pod
}

describe('choosePod', () => {
  it('picks the newest ready pod of a rollout (old and new ReplicaSets of one Deployment)', () => {
    const old = pod({
      name: 'management-pod-aaaaaa-1',
      rs: 'management-pod-aaaaaa',
      hash: 'aaaaaa',
      created: '2026-01-01T00:00:00Z',
    })
    const fresh = pod({
      name: 'management-pod-bbbbbb-2',
      rs: 'management-pod-bbbbbb',
      hash: 'bbbbbb',
      created: '2026-01-02T00:00:00Z',
    })
    const choice = choosePod([old, fresh])
    expect(choice.kind).toBe('chosen')
    expect(choice.kind === 'chosen' && choice.pod.name).toBe('management-pod-bbbbbb-2')
  })

  it('prefers a ready pod over a newer one that is still starting', () => {
    const ready = pod({ name: 'a', rs: 'management-pod-aaaaaa', hash: 'aaaaaa', created: '2026-01-01T00:00:00Z' })
    const starting = pod({
      name: 'b',
      rs: 'management-pod-bbbbbb',
      hash: 'bbbbbb',
      created: '2026-01-02T00:00:00Z',
      phase: 'Pending',
      ready: false,
      waiting: 'ContainerCreating',
    })
    const choice = choosePod([ready, starting])
    expect(choice.kind === 'chosen' && choice.pod.name).toBe('a')
  })

  it('never picks a terminating pod', () => {
    const leaving = pod({
      name: 'a',
      rs: 'management-pod-aaaaaa',
      hash: 'aaaaaa',
      created: '2026-01-03T00:00:00Z',
      terminating: true,
    })
    const staying = pod({ name: 'b', rs: 'management-pod-bbbbbb', hash: 'bbbbbb', created: '2026-01-01T00:00:00Z' })
    const choice = choosePod([leaving, staying])
    expect(choice.kind === 'chosen' && choice.pod.name).toBe('b')
  })

  it('is ambiguous between ready pods of different workloads', () => {
    const one = pod({ name: 'one', rs: 'management-pod-aaaaaa', hash: 'aaaaaa', created: '2026-01-01T00:00:00Z' })
    const two = pod({ name: 'two', rs: 'other-mgmt-bbbbbb', hash: 'bbbbbb', created: '2026-01-02T00:00:00Z' })
    const choice = choosePod([one, two])
    expect(choice.kind).toBe('ambiguous')
    expect(choice.kind === 'ambiguous' && choice.candidates.map((c) => c.name)).toEqual(['two', 'one'])
  })

  it('describes why no pod is ready', () => {
    const crashing = pod({
      name: 'c',
      created: '2026-01-01T00:00:00Z',
      ready: false,
      waiting: 'CrashLoopBackOff',
      restarts: 5,
      lastTermination: 'Error',
    })
    const choice = choosePod([crashing])
    expect(choice.kind).toBe('not-ready')
    if (choice.kind !== 'not-ready') return
    expect(describeNotReady(choice.pod)).toBe('CrashLoopBackOff (phase Running, restarted 5 times, last exit: Error)')
  })

  it('says why an evicted pod cannot be used, as kubectl does', () => {
    const evicted = pod({ name: 'management-pod-x', created: '2026-01-01T00:00:00Z', phase: 'Failed', ready: false })
    evicted.status = { ...evicted.status, reason: 'Evicted', message: 'The node was low on resource: memory.' }
    const choice = choosePod([evicted])
    if (choice.kind !== 'not-ready') throw new Error(`expected not-ready, got ${choice.kind}`)
    expect(describeNotReady(choice.pod)).toBe('Evicted (phase Failed, The node was low on resource: memory.)')
  })

  it('reports no pods', () => {
    expect(choosePod([])).toEqual({ kind: 'none' })
  })
})

describe('workloadOf and chooseContainer', () => {
  it('names the Deployment behind a ReplicaSet pod', () => {
    expect(
      workloadOf(
        pod({ name: 'x', rs: 'management-pod-6dd8b7f898', hash: '6dd8b7f898', created: '2026-01-01T00:00:00Z' }),
      ),
    ).toBe('Deployment/management-pod')
    expect(workloadOf(pod({ name: 'bare', created: '2026-01-01T00:00:00Z' }))).toBe('Pod/bare')
  })

  it('uses --container, then the default-container annotation, then the first container', () => {
    const summary = summarizePod(
      pod({ name: 'x', created: '2026-01-01T00:00:00Z', containers: ['sidecar', 'management-pod'] }),
    )
    expect(chooseContainer(summary, 'management-pod')).toBe('management-pod')
    expect(chooseContainer(summary, 'nope')).toBeUndefined()
    expect(chooseContainer(summary, undefined)).toBe('sidecar')
    summary.defaultContainer = 'management-pod'
    expect(chooseContainer(summary, undefined)).toBe('management-pod')
  })
})
