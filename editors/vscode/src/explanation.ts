// Explanations and answers are markdown: shown as a read-only virtual document in VS Code's markdown
// preview, beside the code. Nothing is written to disk and nothing asks to be saved on close.

import * as vscode from 'vscode';
import { Explanation, explanationMarkdown } from './protocol';

export const EXPLANATION_SCHEME = 'codellama-explanation';
const KEEP = 20;

export class ExplanationView implements vscode.TextDocumentContentProvider, vscode.Disposable {
    private readonly contents = new Map<string, string>();
    private readonly changed = new vscode.EventEmitter<vscode.Uri>();
    readonly onDidChange = this.changed.event;
    private readonly registration: vscode.Disposable;
    private counter = 0;

    constructor(private readonly log: vscode.LogOutputChannel) {
        this.registration = vscode.workspace.registerTextDocumentContentProvider(EXPLANATION_SCHEME, this);
    }

    provideTextDocumentContent(uri: vscode.Uri): string {
        return this.contents.get(uri.toString()) ?? '*This explanation is no longer available.*\n';
    }

    async show(explanation: Explanation): Promise<void> {
        this.counter += 1;
        const name = explanation.title.replace(/[^\w. -]+/g, '-').trim() || 'Explanation';
        const uri = vscode.Uri.from({ scheme: EXPLANATION_SCHEME, path: `/${name}.md`, query: String(this.counter) });
        this.contents.set(uri.toString(), explanationMarkdown(explanation));
        while (this.contents.size > KEEP) {
            const oldest = this.contents.keys().next().value;
            if (oldest === undefined) {
                break;
            }
            this.contents.delete(oldest);
        }
        try {
            // The built-in markdown extension's preview; it reads the document through this provider.
            await vscode.commands.executeCommand('markdown.showPreviewToSide', uri);
        } catch (error) {
            this.log.warn(`markdown preview unavailable (${String(error)}); showing the markdown source`);
            const doc = await vscode.workspace.openTextDocument(uri);
            await vscode.languages.setTextDocumentLanguage(doc, 'markdown');
            await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
        }
    }

    dispose(): void {
        this.registration.dispose();
        this.changed.dispose();
        this.contents.clear();
    }
}
