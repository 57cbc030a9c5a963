/* wm-delete.c — close X11 windows the way a window manager does when the user clicks "close":
 * send each window given on the command line (ids as xdotool prints them) the client message
 * WM_PROTOCOLS / WM_DELETE_WINDOW, if it takes part in that protocol. Under Xvfb there is no
 * window manager: `wmctrl -c` and Alt+F4 need one, and `xdotool windowclose` destroys the window
 * instead of asking the app, which never sees a close request.
 *
 * Build: cc -O2 -o wm-delete wm-delete.c -lX11          (tests/gui/tray.sh does)
 * Usage: wm-delete WINDOW...   Exit status 0 if at least one window was asked to close. */
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <stdio.h>
#include <stdlib.h>

static int takes_delete(Display *d, Window w, Atom del) {
    Atom *protocols = NULL;
    int n = 0, found = 0;
    if (XGetWMProtocols(d, w, &protocols, &n)) {
        for (int i = 0; i < n; i++) found |= protocols[i] == del;
        XFree(protocols);
    }
    return found;
}

int main(int argc, char **argv) {
    Display *d = XOpenDisplay(NULL);
    if (d == NULL) {
        fprintf(stderr, "wm-delete: cannot open the display '%s'\n", XDisplayName(NULL));
        return 2;
    }
    Atom protocols = XInternAtom(d, "WM_PROTOCOLS", False);
    Atom del = XInternAtom(d, "WM_DELETE_WINDOW", False);
    int asked = 0;
    for (int i = 1; i < argc; i++) {
        Window w = (Window)strtoul(argv[i], NULL, 0);
        if (!takes_delete(d, w, del)) continue;
        XEvent e = {0};
        e.xclient.type = ClientMessage;
        e.xclient.window = w;
        e.xclient.message_type = protocols;
        e.xclient.format = 32;
        e.xclient.data.l[0] = (long)del;
        e.xclient.data.l[1] = CurrentTime;
        if (XSendEvent(d, w, False, NoEventMask, &e)) {
            printf("wm-delete: asked window 0x%lx to close\n", (unsigned long)w);
            asked++;
        }
    }
    XSync(d, False);
    XCloseDisplay(d);
    if (asked == 0) {
        fprintf(stderr, "wm-delete: none of the windows given takes WM_DELETE_WINDOW\n");
        return 1;
    }
    return 0;
}
