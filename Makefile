# Vigil — the two commands: `make run` (platform) and `make test` (whole suite).
.PHONY: run cluster stop test build bench contracts demo format install

run:            ## install what is missing, start NATS + PostgreSQL under .run/, build and start all services
	scripts/run

cluster:        ## the cluster profile locally: 3 NATS JetStream nodes, 2 replicas of every service (Ctrl-C stops)
	scripts/cluster

stop:           ## stop everything `make run` started
	scripts/stop

test:           ## unit, integration and black-box tests against real NATS and PostgreSQL
	scripts/test

build:
	swift build

install:        ## build the `vigil` CLI and `vigil-mcp` (release) and install them with bash completions (PREFIX=/usr/local)
	swift build -c release --product vigil
	swift build -c release --product vigil-mcp
	install -D -m 755 "$$(swift build -c release --show-bin-path)/vigil" "$${PREFIX:-/usr/local}/bin/vigil"
	install -D -m 755 "$$(swift build -c release --show-bin-path)/vigil-mcp" "$${PREFIX:-/usr/local}/bin/vigil-mcp"
	mkdir -p "$${PREFIX:-/usr/local}/share/bash-completion/completions"
	"$${PREFIX:-/usr/local}/bin/vigil" --generate-completion-script bash > "$${PREFIX:-/usr/local}/share/bash-completion/completions/vigil"

bench:          ## gateway, notifier and scan throughput and latency (prints figures)
	scripts/bench gateway
	scripts/bench notify
	scripts/bench scan

demo:           ## moto with a misconfigured account, a demo workspace, a scan, findings by severity, one verified fix
	scripts/demo

contracts:      ## regenerate contracts/ from scripts/gen-contracts.py
	python3 scripts/gen-contracts.py

format:         ## apply .swift-format to the tree (make test checks it)
	swift format format --in-place --parallel --recursive libs services clients Tests Package.swift
