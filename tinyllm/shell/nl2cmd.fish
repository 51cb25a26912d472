# nl2cmd widget for fish.  Install:  nl2cmd init fish | source   (e.g. in ~/.config/fish/config.fish)
#
# Type a request in plain English, press the key (Ctrl-G by default): the command line is
# replaced by the suggested shell command.  Nothing is ever executed: review it, press Enter.
# A second key (Alt-E by default) explains the command on the line, part by part.
# The nl2cmd executable can be overridden at run time with NL2CMD_BIN.
if status is-interactive; and not set -q __nl2cmd_loaded
    set -g __nl2cmd_loaded 1

    # Print message lines below the command line, then let fish redraw the prompt.
    function __nl2cmd_msg
        printf '\n'
        printf '%s\n' $argv
        # Leave room for multi-line prompts, as fish's own printing bindings do.
        string repeat -N \n --count=(math (count (fish_prompt)) - 1)
        commandline -f repaint
    end

    # Print the nl2cmd executable; status 1, with a message shown, when the line is empty ($argv[1] says
    # what to type first) or nl2cmd is not on PATH.
    function __nl2cmd_ready
        if not string match -qr '\S' -- (commandline | string collect)
            __nl2cmd_msg $argv[1] >&2  # stdout is the caller's command substitution
            return 1
        end
        set -l bin @NL2CMD_EXE@
        if set -q NL2CMD_BIN; and test -n "$NL2CMD_BIN"
            set bin $NL2CMD_BIN
        end
        if not command -sq -- $bin
            __nl2cmd_msg "nl2cmd: '$bin' not found on PATH (is nl2cmd installed?)" >&2
            return 1
        end
        echo $bin
    end

    function __nl2cmd_widget --description 'nl2cmd: replace the command line with a suggested command'
        set -l bin (__nl2cmd_ready "nl2cmd: type a request first (e.g. 'find big files'), then press the key")
        or return 0
        set -l line (commandline | string collect)

        # fish cannot capture stdout and stderr separately without a temp file (a nested command
        # substitution's stderr ignores the outer redirection), so both go into one capture and
        # are told apart by the CLI's contract: every stderr line starts with "nl2cmd:", stdout is
        # the command.  A last line \x1f<exit status> is added (the CLI never prints control chars).
        # The request is one argv element (never eval'ed); stdin is /dev/null.
        set -l all (command $bin suggest -- $line </dev/null 2>&1; printf '\x1f%s\n' $status)
        set -l err
        set -l out
        set -l code 1
        for l in $all
            if string match -qr '^\x1f[0-9]+$' -- $l
                set code (string sub -s 2 -- $l)
            else if string match -q 'nl2cmd:*' -- $l
                set -a err $l
            else
                set -a out $l
            end
        end

        if test "$code" != 0
            if test (count $err) -eq 0
                if test "$code" = 130
                    set err "nl2cmd: cancelled"
                else
                    set err "nl2cmd: error: nl2cmd failed (exit status $code)"
                end
            end
            __nl2cmd_msg $err
            return 0
        end
        if test (count $out) -ne 1; or not string match -qr '\S' -- $out[1]
            __nl2cmd_msg "nl2cmd: error: no usable suggestion (expected one line of output)"
            return 0
        end

        commandline -r -- $out[1]
        # Cursor on the first {{placeholder}} so the user can fill it in; with none, the
        # first part is the whole line and the cursor goes to the end.
        set -l parts (string split -m 1 -- '{{' $out[1])
        commandline -C (string length -- $parts[1])
        # Danger warnings (or other notes) are shown; the command is only placed, never run.
        if test (count $err) -gt 0
            __nl2cmd_msg $err
        end
    end

    # Explain the command line (Alt-E by default) below it; the line is left as it is.
    function __nl2cmd_explain_widget --description 'nl2cmd: explain the command on the command line'
        set -l bin (__nl2cmd_ready "nl2cmd: type a command first, then press the key to explain it")
        or return 0
        set -l line (commandline | string collect)
        # The line is one argv element (never eval'ed); stdin is /dev/null.
        set -l out (command $bin explain --width $COLUMNS -- $line </dev/null 2>&1)
        __nl2cmd_msg $out
    end

    # @NL2CMD_BINDINGS@
end
