// Package chat is `qchat chat`: the person's client. On a terminal it is a
// line editor (peterh/liner) with slash commands, where incoming messages
// appear above the prompt; piped, it runs the same commands one at a time
// without a prompt, prints plain lines or JSON, and its exit status says
// whether every command succeeded.
//
// One goroutine owns the terminal and runs commands (the REPL or the piped
// reader); one goroutine handles events from the server and only prints
// through the Printer. Shared state (current conversation, known users)
// sits behind app.mu.
package chat
