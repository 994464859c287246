/**
 * `Status` objects exactly as the real API server sends them (k8s.io/apimachinery pkg/api/errors), so that kubectl
 * and akm-access see the same messages they would see from a cluster.
 */
export interface StatusBody {
  kind: 'Status'
  apiVersion: 'v1'
  metadata: Record<string, never>
  status: 'Failure' | 'Success'
  message?: string
  reason?: string
  details?: {
    name?: string
    group?: string
    kind?: string
    causes?: { reason?: string; message: string; field?: string }[]
  }
  code: number
}

export class StatusError extends Error {
  constructor(readonly body: StatusBody) {
    super(body.message ?? body.reason ?? 'error')
  }
  get code(): number {
    return this.body.code
  }
}

const base = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure' } as const

export function notFound(resource: string, name: string): StatusError {
  return new StatusError({
    ...base,
    message: `${resource} "${name}" not found`,
    reason: 'NotFound',
    details: { name, kind: resource },
    code: 404,
  })
}

export function unauthorized(): StatusError {
  return new StatusError({ ...base, message: 'Unauthorized', reason: 'Unauthorized', code: 401 })
}

/**
 * The RBAC denial, as the apiserver's responsewriters.Forbidden builds it: `forbiddenMessage` (`User %q cannot %s
 * resource %q in API group %q in the namespace %q`, with a subresource written as `pods/exec`) wrapped by
 * apierrors.NewForbidden, whose subject is the group-qualified resource *without* the subresource (`pods "x"`,
 * `deployments.apps "x"`).
 */
export function forbidden(
  user: string,
  attributes: {
    verb: string
    resource: string
    subresource?: string
    name?: string
    namespace?: string
    group?: string
  },
): StatusError {
  const group = attributes.group ?? ''
  const resource = attributes.subresource ? `${attributes.resource}/${attributes.subresource}` : attributes.resource
  const qualified = group ? `${attributes.resource}.${group}` : attributes.resource
  const subject = attributes.name ? `${qualified} "${attributes.name}"` : qualified
  const scope = attributes.namespace ? ` in the namespace "${attributes.namespace}"` : ' at the cluster scope'
  return new StatusError({
    ...base,
    message: `${subject} is forbidden: User "${user}" cannot ${attributes.verb} resource "${resource}" in API group "${group}"${scope}`,
    reason: 'Forbidden',
    details: {
      ...(attributes.name ? { name: attributes.name } : {}),
      ...(group ? { group } : {}),
      kind: attributes.resource,
    },
    code: 403,
  })
}

export function badRequest(message: string): StatusError {
  return new StatusError({ ...base, message, reason: 'BadRequest', code: 400 })
}

export function internalError(cause: string): StatusError {
  return new StatusError({
    ...base,
    message: `Internal error occurred: ${cause}`,
    reason: 'InternalError',
    details: { causes: [{ message: cause }] },
    code: 500,
  })
}

export function methodNotAllowed(): StatusError {
  return new StatusError({
    ...base,
    message: 'the server does not allow this method on the requested resource',
    reason: 'MethodNotAllowed',
    code: 405,
  })
}

export function pathNotFound(): StatusError {
  return new StatusError({
    ...base,
    message: 'the server could not find the requested resource',
    reason: 'NotFound',
    code: 404,
  })
}
