import { describe, expect, it } from 'vitest'
import { AccessError, ExitCode } from '../../../src/errors.js'
import {
  describeForbidden,
  errorFromResponse,
  parseForbiddenMessage,
  type RequestContext,
} from '../../../src/kube/api-errors.js'
import { formatDuration, parseRequestTimeout } from '../../../src/kube/duration.js'
import { connectionFor } from './fixtures.js'

describe('parseRequestTimeout (kubectl --request-timeout)', () => {
  it.each([
    ['0', 0],
    ['30', 30_000],
    ['30s', 30_000],
    ['1m', 60_000],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    ['0s', 0],
    ['+5s', 5000],
    ['500us', 1],
  ])('%s → %d ms', (text, ms) => {
    expect(parseRequestTimeout(text)).toBe(ms)
  })

  it.each(['', '-1', '-5s', '10x', 's', '1m-2s', 'abc', '1.2.3s'])('rejects %j as a usage error', (text) => {
    let error: unknown
    try {
      parseRequestTimeout(text)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(AccessError)
    expect((error as AccessError).exitCode).toBe(ExitCode.usage)
    expect((error as AccessError).message).toBe(`invalid --request-timeout value "${text}"`)
  })

  it('formats durations for messages', () => {
    expect(formatDuration(300)).toBe('300ms')
    expect(formatDuration(30_000)).toBe('30s')
    expect(formatDuration(90_000)).toBe('1m30s')
    expect(formatDuration(3_600_000)).toBe('1h')
  })
})

describe('RBAC messages', () => {
  it('parses namespaced, subresource, grouped, cluster-scoped and path denials', () => {
    expect(
      parseForbiddenMessage(
        'secrets "x" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "akamas"',
      ),
    ).toEqual({ user: 'alice', verb: 'get', resource: 'secrets', group: '', namespace: 'akamas', path: undefined })
    expect(
      parseForbiddenMessage(
        'pods "p" is forbidden: User "system:serviceaccount:ci:deployer" cannot create resource "pods/exec" in API group "" in the namespace "akamas": RBAC: role.rbac.authorization.k8s.io "x" not found',
      ),
    ).toMatchObject({
      user: 'system:serviceaccount:ci:deployer',
      verb: 'create',
      resource: 'pods/exec',
      namespace: 'akamas',
    })
    expect(
      parseForbiddenMessage(
        'namespaces is forbidden: User "bob@example.com" cannot list resource "namespaces" in API group "" at the cluster scope',
      ),
    ).toMatchObject({ verb: 'list', resource: 'namespaces', namespace: undefined })
    expect(parseForbiddenMessage('forbidden: User "a \\"quoted\\" name" cannot get path "/version"')).toEqual({
      user: 'a "quoted" name',
      verb: 'get',
      resource: '',
      group: '',
      namespace: undefined,
      path: '/version',
    })
    expect(parseForbiddenMessage('pods "x" is forbidden: violates PodSecurity "restricted:latest"')).toBeUndefined()
  })

  it('phrases them for people', () => {
    expect(
      describeForbidden({
        user: 'system:serviceaccount:ci:deployer',
        verb: 'create',
        resource: 'pods/exec',
        group: '',
        namespace: 'akamas',
        path: undefined,
      }),
    ).toEqual({
      message: 'you may not create pods/exec in namespace akamas',
      hint: 'ask your cluster administrator for an RBAC Role that allows "create" on "pods/exec" in namespace akamas for the service account ci/deployer (check with `kubectl auth can-i create pods --subresource=exec -n akamas`)',
    })
    expect(
      describeForbidden({
        user: 'bob',
        verb: 'create',
        resource: 'selfsubjectaccessreviews',
        group: 'authorization.k8s.io',
        namespace: undefined,
        path: undefined,
      }).message,
    ).toBe('you may not create selfsubjectaccessreviews.authorization.k8s.io at the cluster scope')
  })

  it('falls back to the Status message for other 403s', () => {
    const context: RequestContext = {
      method: 'POST',
      path: '/api/v1/namespaces/akamas/pods',
      server: 'kube:6443',
      proxy: undefined,
      cluster: connectionFor({ server: 'https://kube:6443' }).cluster,
      user: connectionFor({ server: 'https://kube:6443' }).user,
      contextName: 'prod',
      requestTimeoutMs: 0,
    }
    const body = Buffer.from(
      JSON.stringify({
        kind: 'Status',
        status: 'Failure',
        code: 403,
        reason: 'Forbidden',
        message: 'pods "x" is forbidden: violates PodSecurity',
      }),
    )
    const error = errorFromResponse(403, 'Forbidden', 'application/json', body, context)
    expect(error.message).toBe('the API server refused the request: pods "x" is forbidden: violates PodSecurity')
    expect(error.exitCode).toBe(ExitCode.forbidden)
    const html = errorFromResponse(403, 'Forbidden', 'text/html', Buffer.from('<html>nope</html>'), context)
    expect(html.message).toBe('the API server refused the request: 403 Forbidden')
  })
})
