package volumes

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestMounts(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"app.conf": "x=1"}}
	e := newEnv(t, cm)
	outside := t.TempDir()
	pod := newPod(
		corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
	)
	vols := e.setup(t, pod)
	data := e.dir(pluginEmptyDir, "data")
	// A link a container could plant to break out of the volume.
	if err := os.Symlink(outside, filepath.Join(data, "evil")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"POD_NAME": "web-0", "EMPTY": ""}
	hostToContainer, bidi := corev1.MountPropagationHostToContainer, corev1.MountPropagationBidirectional

	for _, tc := range []struct {
		name    string
		mount   corev1.VolumeMount
		want    *runtimeapi.Mount
		wantErr string
	}{
		{name: "whole volume", mount: corev1.VolumeMount{Name: "data", MountPath: "/data"},
			want: &runtimeapi.Mount{ContainerPath: "/data", HostPath: data}},
		{name: "read-only and propagation", mount: corev1.VolumeMount{Name: "data", MountPath: "/ro", ReadOnly: true, MountPropagation: &hostToContainer},
			want: &runtimeapi.Mount{ContainerPath: "/ro", HostPath: data, Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}},
		{name: "bidirectional", mount: corev1.VolumeMount{Name: "data", MountPath: "/b", MountPropagation: &bidi},
			want: &runtimeapi.Mount{ContainerPath: "/b", HostPath: data, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}},
		{name: "configMap forced read-only", mount: corev1.VolumeMount{Name: "cfg", MountPath: "etc/app"},
			want: &runtimeapi.Mount{ContainerPath: "/etc/app", HostPath: e.dir(pluginConfigMap, "cfg"), Readonly: true}},
		{name: "subPath created", mount: corev1.VolumeMount{Name: "data", MountPath: "/logs", SubPath: "logs/app"},
			want: &runtimeapi.Mount{ContainerPath: "/logs", HostPath: filepath.Join(data, "logs/app")}},
		{name: "subPathExpr", mount: corev1.VolumeMount{Name: "data", MountPath: "/per-pod", SubPathExpr: "pods/$(POD_NAME)/$$x"},
			want: &runtimeapi.Mount{ContainerPath: "/per-pod", HostPath: filepath.Join(data, "pods/web-0/$x")}},
		{name: "subPathExpr missing var", mount: corev1.VolumeMount{Name: "data", MountPath: "/x", SubPathExpr: "$(NOPE)/$(EMPTY)"},
			wantErr: `volumeMount "data" of container "c": subPathExpr "$(NOPE)/$(EMPTY)": missing value for EMPTY, NOPE`},
		{name: "subPath with ..", mount: corev1.VolumeMount{Name: "data", MountPath: "/x", SubPath: "a/../../etc"},
			wantErr: `volumeMount "data" of container "c": unable to provision SubPath ` + "`a/../../etc`" + `: must not contain '..'`},
		{name: "subPathExpr expanding to ..", mount: corev1.VolumeMount{Name: "data", MountPath: "/x", SubPathExpr: "$(UP)/etc"},
			wantErr: "unable to provision SubPath `../etc`"},
		{name: "absolute subPath", mount: corev1.VolumeMount{Name: "data", MountPath: "/x", SubPath: "/etc"},
			wantErr: `volumeMount "data" of container "c": error SubPath ` + "`/etc`" + ` must not be an absolute path`},
		{name: "subPath through an escaping symlink", mount: corev1.VolumeMount{Name: "data", MountPath: "/x", SubPath: "evil/inside"},
			wantErr: `subpath "evil/inside" not within volume path`},
		{name: "unknown volume", mount: corev1.VolumeMount{Name: "nope", MountPath: "/x"},
			wantErr: `cannot find volume "nope" to mount into container "c"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{tc.mount}}
			env := env
			if tc.name == "subPathExpr expanding to .." {
				env = map[string]string{"UP": ".."}
			}
			got, err := Mounts(pod, c, vols, env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ContainerPath != tc.want.ContainerPath || got[0].HostPath != tc.want.HostPath ||
				got[0].Readonly != tc.want.Readonly || got[0].Propagation != tc.want.Propagation {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Created subPath directories take the volume's mode, special bits
	// included (the kubelet's: a memory-backed emptyDir's subPath with an
	// fsGroup is "dgtrwxrwxrwx").
	if fi, err := os.Stat(filepath.Join(data, "logs/app")); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("subPath dir: %v %v", fi, err)
	}
	if err := os.Chmod(data, 0o777|os.ModeSetgid|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	sub := &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/s", SubPath: "special"}}}
	if _, err := Mounts(pod, sub, vols, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(data, "special")); err != nil || fi.Mode() != os.ModeDir|0o777|os.ModeSetgid|os.ModeSticky {
		t.Errorf("subPath dir in a setgid, sticky volume: %v %v", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(outside, "inside")); !os.IsNotExist(err) {
		t.Errorf("directory created outside the volume: %v", err)
	}

	// A single-file subPath pins the file's current content directory.
	c := &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/app.conf", SubPath: "app.conf"}}}
	got, err := Mounts(pod, c, vols, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := os.Readlink(filepath.Join(e.dir(pluginConfigMap, "cfg"), dataLink))
	if want := filepath.Join(e.dir(pluginConfigMap, "cfg"), ts, "app.conf"); got[0].HostPath != want || !got[0].Readonly {
		t.Errorf("file subPath mount = %v, want host path %s read-only", got[0], want)
	}
}

func TestHostPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Socket paths are short-limited: keep it out of the long test dir name.
	sockDir, err := os.MkdirTemp("", "hp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	for _, tc := range []struct {
		name    string
		path    string
		typ     corev1.HostPathType
		wantErr string
		check   func(t *testing.T)
	}{
		{name: "unset, missing", path: filepath.Join(dir, "missing"), typ: corev1.HostPathUnset},
		{name: "DirectoryOrCreate", path: filepath.Join(dir, "new/nested"), typ: corev1.HostPathDirectoryOrCreate,
			check: func(t *testing.T) {
				if fi, err := os.Stat(filepath.Join(dir, "new/nested")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
					t.Errorf("created dir: %v %v", fi, err)
				}
			}},
		{name: "DirectoryOrCreate on a file", path: file, typ: corev1.HostPathDirectoryOrCreate,
			wantErr: "hostPath type check failed: " + file + " is not a directory"},
		{name: "Directory", path: dir, typ: corev1.HostPathDirectory},
		{name: "Directory missing", path: filepath.Join(dir, "missing"), typ: corev1.HostPathDirectory,
			wantErr: "hostPath type check failed: " + filepath.Join(dir, "missing") + " is not a directory"},
		{name: "FileOrCreate", path: filepath.Join(dir, "created"), typ: corev1.HostPathFileOrCreate,
			check: func(t *testing.T) {
				if fi, err := os.Stat(filepath.Join(dir, "created")); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("created file: %v %v", fi, err)
				}
			}},
		{name: "File", path: file, typ: corev1.HostPathFile},
		{name: "File on a directory", path: dir, typ: corev1.HostPathFile,
			wantErr: "hostPath type check failed: " + dir + " is not a file"},
		{name: "Socket", path: sock, typ: corev1.HostPathSocket},
		{name: "Socket on a file", path: file, typ: corev1.HostPathSocket,
			wantErr: "hostPath type check failed: " + file + " is not a socket file"},
		{name: "CharDevice", path: "/dev/null", typ: corev1.HostPathCharDev},
		{name: "CharDevice on a file", path: file, typ: corev1.HostPathCharDev,
			wantErr: "hostPath type check failed: " + file + " is not a character device"},
		{name: "BlockDevice on a char device", path: "/dev/null", typ: corev1.HostPathBlockDev,
			wantErr: "hostPath type check failed: /dev/null is not a block device"},
		{name: "invalid type", path: dir, typ: "Bogus", wantErr: "Bogus is an invalid volume type"},
		{name: "backsteps", path: dir + "/../etc", typ: corev1.HostPathUnset,
			wantErr: "invalid HostPath `" + dir + "/../etc`: must not contain '..'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			typ := tc.typ
			pod := newPod(corev1.Volume{Name: "hp", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: tc.path, Type: &typ}}})
			vols, err := e.m.Setup(t.Context(), pod)
			if tc.wantErr != "" {
				if want := `MountVolume.SetUp failed for volume "hp" : ` + tc.wantErr; err == nil || err.Error() != want {
					t.Fatalf("error %v, want %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if vols["hp"] != (Volume{HostPath: tc.path}) {
				t.Errorf("volume = %+v", vols["hp"])
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}
