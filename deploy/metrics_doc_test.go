package deploy_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docMetric is one row of docs/metrics.md's tables.
type docMetric struct {
	typ    string
	labels []string
}

var (
	docRow    = regexp.MustCompile("^\\| `([a-z_:*]+)` \\| (counter|gauge|histogram|summary|untyped|various) \\| ([^|]*) \\|")
	docLabels = regexp.MustCompile("`([a-z_]+)`")
)

// readMetricsDoc reads the metric rows of docs/metrics.md: name, type and
// labels ("—" for none). A name ending in "*" covers a prefix (go_*).
func readMetricsDoc(t *testing.T) map[string]docMetric {
	t.Helper()
	data, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docMetric{}
	for _, line := range strings.Split(string(data), "\n") {
		m := docRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("docs/metrics.md lists %s twice", m[1])
		}
		var labels []string
		for _, l := range docLabels.FindAllStringSubmatch(m[3], -1) {
			labels = append(labels, l[1])
		}
		slices.Sort(labels)
		out[m[1]] = docMetric{typ: m[2], labels: labels}
	}
	if len(out) == 0 {
		t.Fatal("docs/metrics.md has no metric rows")
	}
	return out
}

// docCovers returns the row of docs that covers name: its own, or a
// prefix row (go_*).
func docCovers(docs map[string]docMetric, name string) (string, bool) {
	if _, ok := docs[name]; ok {
		return name, true
	}
	for k := range docs {
		if strings.HasSuffix(k, "*") && strings.HasPrefix(name, strings.TrimSuffix(k, "*")) {
			return k, true
		}
	}
	return "", false
}

// TestMetricsDocListsEveryMetric scrapes a running sessiongate with every
// optional feature on, after traffic that creates every labelled series,
// and holds docs/metrics.md to it: every metric exposed is documented with
// its type and labels, and every documented metric is exposed.
func TestMetricsDocListsEveryMetric(t *testing.T) {
	t.Parallel()
	g := startGate(t)
	g.driveTraffic(t)
	fams := parseExposition(t, g.scrape(t))
	docs := readMetricsDoc(t)

	seenRows := map[string]bool{}
	for name, f := range fams {
		row, ok := docCovers(docs, name)
		if !ok {
			t.Errorf("%s (%s, labels %v) is exposed but not in docs/metrics.md", name, f.typ, sortedKeys(f.labels))
			continue
		}
		seenRows[row] = true
		if strings.HasSuffix(row, "*") {
			continue
		}
		d := docs[row]
		if d.typ != f.typ {
			t.Errorf("%s: docs/metrics.md says %s, the scrape says %s", name, d.typ, f.typ)
		}
		if got := sortedKeys(f.labels); !slices.Equal(got, d.labels) {
			t.Errorf("%s: docs/metrics.md lists labels %v, the scrape has %v", name, d.labels, got)
		}
	}
	for row := range docs {
		if !seenRows[row] {
			t.Errorf("docs/metrics.md lists %s, which the binary does not expose (with every feature on, after traffic)", row)
		}
	}
}
