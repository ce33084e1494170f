// Wiring only: the output channel, settings, status bar, explanation view, language client and commands.
// Each piece lives in its own module.

import * as vscode from 'vscode';
import { ServerClient } from './client';
import { COMMANDS, registerCommands } from './commands';
import { ExplanationView } from './explanation';
import { Settings } from './settings';
import { StatusBar } from './status';

let client: ServerClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    const output = vscode.window.createOutputChannel('CodeLlama', { log: true });
    const settings = new Settings(context.secrets);
    const status = new StatusBar(settings.backend, COMMANDS.showOutput);
    const explanations = new ExplanationView(output);
    client = new ServerClient(settings, output, {
        onStatus: (params) => status.onServerStatus(params),
        onPartial: (params) => explanations.partial(params),
        onClientState: (state, message) => status.setClient(state, message),
        showExplanation: (explanation) => explanations.show(explanation),
        completionsEnabled: () => status.completionsEnabled,
    });
    const server = client;
    context.subscriptions.push(
        output,
        settings,
        status,
        explanations,
        server,
        ...registerCommands({ client: server, settings, status, explanations, output }),
        settings.onDidChange((change) => {
            status.setConfiguredBackend(settings.backend);
            const done = change === 'server' ? server.restart() : server.sendSettings();
            done.catch((error: unknown) => output.error(`applying the new settings: ${String(error)}`));
        }),
    );
    await server.start();
    void explanations.warmUp();
}

export async function deactivate(): Promise<void> {
    await client?.stop();
    client = undefined;
}
