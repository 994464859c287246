/**
 * SelfSubjectAccessReview: JSON (what TypeScript clients send) and the protobuf envelope that `kubectl auth can-i`
 * sends (magic `k8s\0`, then runtime.Unknown{typeMeta, raw}), read with a minimal protobuf wire-format reader.
 */
import type { ResourceAttributes } from './rbac.js'

export interface ReviewRequest {
  attributes: ResourceAttributes
  /** The request as JSON, echoed back in the response's spec. */
  spec: Record<string, unknown>
}

const protobufMagic = Buffer.from([0x6b, 0x38, 0x73, 0x00])

export function parseReview(body: Buffer, contentType: string | undefined): ReviewRequest {
  if (contentType?.includes('protobuf') || body.subarray(0, 4).equals(protobufMagic)) return parseProtobufReview(body)
  const json = JSON.parse(body.toString('utf8')) as { spec?: { resourceAttributes?: Record<string, string> } }
  const attributes = json.spec?.resourceAttributes ?? {}
  return {
    attributes: {
      verb: attributes.verb ?? '',
      resource: attributes.resource ?? '',
      ...(attributes.subresource ? { subresource: attributes.subresource } : {}),
      ...(attributes.namespace ? { namespace: attributes.namespace } : {}),
      ...(attributes.name ? { name: attributes.name } : {}),
      ...(attributes.group ? { group: attributes.group } : {}),
    },
    spec: json.spec ?? {},
  }
}

function parseProtobufReview(body: Buffer): ReviewRequest {
  const unknown = readFields(body.subarray(4))
  const raw = unknown.get(2)?.[0]
  if (!raw) throw new Error('protobuf SelfSubjectAccessReview without raw')
  const review = readFields(raw)
  const spec = readFields(review.get(2)?.[0] ?? Buffer.alloc(0))
  const resourceAttributes = readFields(spec.get(1)?.[0] ?? Buffer.alloc(0))
  const text = (field: number) => resourceAttributes.get(field)?.[0]?.toString('utf8') ?? ''
  const attributes: ResourceAttributes = {
    namespace: text(1),
    verb: text(2),
    group: text(3),
    resource: text(5),
    subresource: text(6),
    name: text(7),
  }
  const cleaned = Object.fromEntries(
    Object.entries(attributes).filter(([, value]) => value !== ''),
  ) as unknown as ResourceAttributes
  return { attributes: cleaned, spec: { resourceAttributes: cleaned } }
}

/** Length-delimited fields of a protobuf message by field number (other wire types are skipped). */
function readFields(buffer: Buffer): Map<number, Buffer[]> {
  const fields = new Map<number, Buffer[]>()
  let offset = 0
  const varint = (): number => {
    let result = 0
    let shift = 0
    for (;;) {
      const byte = buffer[offset++]
      if (byte === undefined) throw new Error('truncated protobuf')
      result += (byte & 0x7f) * 2 ** shift
      if ((byte & 0x80) === 0) return result
      shift += 7
    }
  }
  while (offset < buffer.length) {
    const key = varint()
    const field = Math.floor(key / 8)
    const wireType = key & 7
    if (wireType === 2) {
      const length = varint()
      const value = buffer.subarray(offset, offset + length)
      offset += length
      fields.set(field, [...(fields.get(field) ?? []), value])
    } else if (wireType === 0) varint()
    else if (wireType === 1) offset += 8
    else if (wireType === 5) offset += 4
    else throw new Error(`unsupported protobuf wire type ${wireType}`)
  }
  return fields
}

/**
 * The review as the RBAC authorizer answers it: an allow names the binding that allowed it; a deny is RBAC's "no
 * opinion", which carries no reason (so `kubectl auth can-i` prints a bare `no`).
 */
export function reviewResponse(request: ReviewRequest, allowed: boolean, user: string): Record<string, unknown> {
  return {
    kind: 'SelfSubjectAccessReview',
    apiVersion: 'authorization.k8s.io/v1',
    metadata: { creationTimestamp: null },
    spec: request.spec,
    status: allowed
      ? {
          allowed: true,
          reason: `RBAC: allowed by ClusterRoleBinding "${user}" of ClusterRole "cluster-admin" to User "${user}"`,
        }
      : { allowed: false },
  }
}
