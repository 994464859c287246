import * as Flags from '@oclif/core/flags'

/**
 * The docker-compose backend: which engine (as the docker CLI resolves it) and which container. Any of the first
 * three switches the command from Kubernetes to the Docker Engine API; without them, a machine with no Kubernetes
 * configuration but a management container on its Docker engine uses that container (and says so).
 */
export const dockerTargetFlags = {
  docker: Flags.boolean({
    summary: 'Use the docker-compose management container (through the Docker Engine API) instead of Kubernetes.',
    helpGroup: 'DOCKER',
  }),
  'docker-context': Flags.string({
    summary:
      "Docker context to use, as docker --context (implies --docker; default: DOCKER_HOST, DOCKER_CONTEXT, the docker CLI's current context).",
    helpGroup: 'DOCKER',
  }),
  'container-name': Flags.string({
    summary:
      'The management container, by name or id (implies --docker; default: the compose service management-container).',
    helpGroup: 'DOCKER',
  }),
}

/** For the commands that reach sshd in the container: how the stream gets there. */
export const dockerStreamFlags = {
  ...dockerTargetFlags,
  'docker-stream': Flags.string({
    summary:
      "How to reach sshd in the container: auto (its address when this machine is on the container's network, else through the engine), address, or exec (always through the engine).",
    options: ['auto', 'address', 'exec'],
    helpGroup: 'DOCKER',
  }),
}

/** Your own key, for installations whose sshd takes no password (ALLOW_PASSWORD=false). */
export const identityFileFlag = Flags.string({
  summary: 'Log in with this private key (one that sshd authorizes), tried before the password.',
  helpGroup: 'CREDENTIALS',
})
