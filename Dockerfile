# One image, two entry points: `vmove controller` (Deployment) and `vmove agent` (DaemonSet).
# The agent image carries QEMU and the libvirt client so the qemu and libvirt drivers work on
# the host it runs on; the controller ignores them.
# BASE: any Debian bookworm with Node 24 in /usr/local/bin and a user `node` (uid 1000), as the
# official image; hack/build-image.sh makes its own where nothing can be pulled.
ARG BASE=node:24-bookworm-slim

FROM ${BASE} AS build
# npm settings for a mirror, e.g. --build-arg NPM_CONFIG_REGISTRY=https://npm.example/. A registry
# behind a TLS proxy gets its CA as a secret (--secret id=npm_ca,src=ca.pem): a secret is in no
# layer, and this stage is not in the final image anyway.
ARG NPM_CONFIG_REGISTRY
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi \
 && npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev

FROM ${BASE}
# apt-get options, e.g. --build-arg APT_OPTS="-o Acquire::http::Proxy=http://proxy:3128".
ARG APT_OPTS=""
RUN apt-get $APT_OPTS update \
 && apt-get $APT_OPTS install -y --no-install-recommends qemu-system-x86 qemu-utils libvirt-clients ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY crds ./crds
# The kubectl plugin (`kubectl vmove …`): its script finds dist/ next to it and the image's Node.
COPY bin ./bin
RUN ln -s /app/bin/kubectl-vmove /usr/local/bin/kubectl-vmove
USER node
# --max-semi-space-size: as src/local/fleet.ts's NODE_FLAGS says (a young generation of 16 MiB, not 128).
ENTRYPOINT ["node", "--max-semi-space-size=8", "/app/dist/cli/main.js"]
CMD ["controller"]
