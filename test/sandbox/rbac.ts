/**
 * Authorization as the sandbox's scenarios configure it: everything is allowed unless a rule denies it. Rules name
 * a verb and a resource (optionally a subresource, namespace and user), like the RBAC an admin would leave out.
 */
export interface ResourceAttributes {
  verb: string
  resource: string
  subresource?: string
  namespace?: string
  name?: string
  group?: string
}

export interface DenyRule {
  verb: string | '*'
  /** e.g. `secrets`, `pods`, or `pods/exec` for a subresource. */
  resource: string
  namespace?: string
  /** Only for this user (default: everybody). */
  user?: string
}

export class Authorizer {
  private rules: DenyRule[] = []

  deny(rule: DenyRule): void {
    this.rules.push(rule)
  }

  reset(): void {
    this.rules = []
  }

  allowed(user: string, attributes: ResourceAttributes): boolean {
    const resource = attributes.subresource ? `${attributes.resource}/${attributes.subresource}` : attributes.resource
    return !this.rules.some(
      (rule) =>
        (rule.verb === '*' || rule.verb === attributes.verb) &&
        rule.resource === resource &&
        (rule.namespace === undefined || rule.namespace === attributes.namespace) &&
        (rule.user === undefined || rule.user === user),
    )
  }
}
