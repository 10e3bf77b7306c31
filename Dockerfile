# One image, two entry points: `vmove controller` (Deployment) and `vmove agent` (DaemonSet).
# The agent image carries QEMU and the libvirt client so the qemu and libvirt drivers work on
# the host it runs on; the controller ignores them.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils libvirt-clients ca-certificates \
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
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["controller"]
