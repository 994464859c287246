/**
 * `kubectl auth can-i` as a function: a SelfSubjectAccessReview asks the API server whether we may do something,
 * without doing it. `doctor` uses it to report missing RBAC permissions up front, and callers can use it to explain
 * a failure whose own error says little.
 */
import type { V1SelfSubjectAccessReview } from '@kubernetes/client-node'
import type { KubeClient } from './client.js'

export interface AccessQuestion {
  readonly verb: string
  /** Plural resource, e.g. `secrets`, `pods`. */
  readonly resource: string
  /** e.g. `exec`, `portforward`. */
  readonly subresource?: string
  /** API group; `` for the core group. */
  readonly group?: string
  readonly namespace?: string
  readonly name?: string
}

export interface AccessAnswer {
  readonly allowed: boolean
  /** Explicitly denied (rather than just not allowed). */
  readonly denied: boolean
  readonly reason: string | undefined
}

/** POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews. */
export async function canI(client: KubeClient, question: AccessQuestion): Promise<AccessAnswer> {
  const review = await client.request<V1SelfSubjectAccessReview>(
    'POST',
    '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    {
      body: {
        kind: 'SelfSubjectAccessReview',
        apiVersion: 'authorization.k8s.io/v1',
        spec: {
          resourceAttributes: {
            verb: question.verb,
            resource: question.resource,
            ...(question.subresource ? { subresource: question.subresource } : {}),
            ...(question.group ? { group: question.group } : {}),
            ...(question.namespace ? { namespace: question.namespace } : {}),
            ...(question.name ? { name: question.name } : {}),
          },
        },
      },
    },
  )
  const status = review?.status
  return {
    allowed: status?.allowed === true,
    denied: status?.denied === true,
    reason: status?.reason || status?.evaluationError || undefined,
  }
}
