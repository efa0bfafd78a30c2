// Package filewatch tells its caller when the content of a set of files
// changes: certificate and key files, and the bearer-key file.
//
// It watches the directories that hold the files, not the files: editors
// replace files by rename, and the kubelet updates a Secret volume by
// swapping the "..data" symlink, either of which kills a watch on the file
// itself. Any event in a watched directory re-arms one debounce timer, so a
// burst of events gives one check. A check hashes the files' contents and
// calls OnChange only when the hashes differ from the last check. A slow
// poll repeats the same check as a safety net for lost events (inotify
// queue overflow, network volumes).
//
// This is the only package that imports fsnotify.
package filewatch
