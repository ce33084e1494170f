// What the status bar item says, as plain data: the `vscode` side (status.ts) only paints it.

import type { ServerState, StatusParams } from './protocol';

export type ClientState = 'starting' | 'running' | 'stopped' | 'notFound';

export interface StatusSnapshot {
    client: ClientState;
    server: ServerState;
    message: string;
    /** Model (or backend) name from the last codellama/status; else the configured backend. */
    model: string | null;
    configuredBackend: string;
    completionsEnabled: boolean;
}

export interface StatusView {
    text: string;
    tooltip: string;
    /** Paint the item with the error (or warning) background. */
    alert: 'error' | 'warning' | undefined;
}

export function initialSnapshot(configuredBackend = 'auto'): StatusSnapshot {
    return {
        client: 'starting',
        server: 'idle',
        message: '',
        model: null,
        configuredBackend,
        completionsEnabled: true,
    };
}

/** The snapshot after a codellama/status notification. */
export function applyStatus(snapshot: StatusSnapshot, params: StatusParams): StatusSnapshot {
    return {
        ...snapshot,
        client: 'running',
        server: params.state,
        message: params.message ?? '',
        model: params.backend ?? snapshot.model,
    };
}

/** `TheBloke/CodeLlama-70B-Instruct-GPTQ` -> `CodeLlama-70B-Instruct-GPTQ`: the status bar is narrow. */
export function shortModelName(model: string): string {
    const last = model.replace(/\/+$/, '').split('/').pop();
    return last || model;
}

export function describeStatus(s: StatusSnapshot): StatusView {
    const model = s.model ?? s.configuredBackend;
    const where = model ? ` · ${shortModelName(model)}` : '';
    const completions = s.completionsEnabled ? 'Completions on' : 'Completions off';
    const details = [
        `Model: ${s.model ?? 'not asked yet'}`,
        `Backend setting: ${s.configuredBackend}`,
        completions,
    ];
    switch (s.client) {
        case 'notFound':
            return {
                text: '$(error) CodeLlama: server not found',
                tooltip: `${s.message}\nClick to show the output.`,
                alert: 'error',
            };
        case 'stopped':
            return {
                text: '$(debug-stop) CodeLlama: stopped',
                tooltip: `The server is not running${s.message ? `: ${s.message}` : ''}.\nClick to show the output.`,
                alert: 'warning',
            };
        case 'starting':
            return { text: '$(loading~spin) CodeLlama: starting', tooltip: 'Starting codellama-lsp…', alert: undefined };
        case 'running':
            break;
    }
    const off = s.completionsEnabled ? '' : '$(circle-slash) ';
    switch (s.server) {
        case 'busy':
            return {
                text: `$(loading~spin) ${off}CodeLlama: thinking${where}`,
                tooltip: ['CodeLlama is thinking…', s.message, ...details].filter(Boolean).join('\n'),
                alert: undefined,
            };
        case 'error':
            return {
                text: `$(error) ${off}CodeLlama: error${where}`,
                tooltip: [`Last request failed: ${s.message || 'unknown error'}`, ...details, 'Click to show the output.'].join(
                    '\n',
                ),
                alert: 'error',
            };
        case 'idle':
        default:
            return {
                text: `$(sparkle) ${off}CodeLlama${where}`,
                tooltip: ['CodeLlama is idle', ...details].join('\n'),
                alert: undefined,
            };
    }
}
