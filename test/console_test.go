package test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unifiedms/ums/config"
	"github.com/unifiedms/ums/internal/testutil"
)

// The web console, driven in headless Chromium as an operator uses it.
// Screenshots of the main pages go to $UMS_SCREENSHOT_DIR when set
// (docs/screenshots is made this way), else to the test's temp dir.

// chromiumPath finds Debian's chromium (or $UMS_CHROMIUM).
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("UMS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium not found (apt-get install -y chromium, or set UMS_CHROMIUM): the web console's browser tests skip")
	return ""
}

// browser starts a headless Chromium and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // the tests may run as root
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// run runs browser actions, failing the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(step, steps...); err != nil {
		short, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		body, _ := chromedp.Run(short, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

// waitText waits until the element sel shows text containing want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			got, err := chromedp.Text(chromedp.CSS(sel))(ctx, t)
			if err != nil {
				return err
			}
			if strings.Contains(got, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return errors.New("waiting for " + sel + " to show " + want + ", it shows " + got)
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

func screenshotDir(t *testing.T) string {
	if d := os.Getenv("UMS_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// screenshot saves the whole page as name.png.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// click clicks the element sel, again if a refresh of the page replaced
// it between finding and clicking it.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			_, err := chromedp.Click(chromedp.CSS(sel))(ctx, t)
			if err == nil || !strings.Contains(err.Error(), "Could not find node") || ctx.Err() != nil {
				return err
			}
		}
	})
}

// login logs in through the form and waits for the overview.
func login(t *testing.T, ctx context.Context, base, user, pass string) {
	t.Helper()
	run(t, ctx, "log in as "+user,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), pass),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#rates-chart")),
	)
}

// acceptDialogs makes the page's confirm() answer yes.
var acceptDialogs = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	_, err := chromedp.Evaluate[bool](`window.confirm = () => true; true`)(ctx, t)
	return err
})

func TestConsoleBrowser(t *testing.T) {
	ctx := browser(t)
	e := startNotify(t, testutil.WithConfig(func(c *config.Config) {
		c.ConsoleRefresh = 200 * time.Millisecond
		c.NotifyMaxAttempts = 1
	}))
	base, shots := e.b.HTTPURL, screenshotDir(t)

	// Logging in with a wrong password says so and starts no session.
	run(t, ctx, "a failed login",
		chromedp.Navigate(base+"/queues"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#username"), "guest"),
		chromedp.SendKeys(chromedp.CSS("#password"), "wrong"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		waitText("#login-error", "Login failed"),
	)
	login(t, ctx, base, "guest", "guest")

	conn := dialBroker(t, e.b.Broker)
	ch := openChannel(t, conn)

	// The overview counts the connection and draws the rates of messages
	// published while it is open.
	if _, err := ch.QueueDeclare("console.load", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "open the overview", chromedp.Navigate(base+"/"), waitText("#by-protocol", "AMQP"))
	stop := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				published <- nil
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := ch.Publish("", "console.load", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
				published <- err
				return
			}
		}
	}()
	run(t, ctx, "the overview shows the published rate",
		chromedp.WaitReady(chromedp.CSS(`#rates-chart polyline[data-series="publish"]`)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			for {
				rate, err := chromedp.Text(chromedp.CSS("#r-publish"))(ctx, tg)
				if err != nil {
					return err
				}
				if f, err := strconv.ParseFloat(rate, 64); err == nil && f > 0 {
					return nil
				}
				select {
				case <-ctx.Done():
					return errors.New("the published rate stays at " + rate)
				case <-time.After(50 * time.Millisecond):
				}
			}
		}),
	)
	// Some readings later the chart draws a line (and the screenshot shows it).
	run(t, ctx, "the rate chart draws a line", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`document.querySelector('#rates-chart polyline[data-series="publish"]').points.numberOfItems >= 8`)(ctx, tg)
		return err
	}))
	close(stop)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, shots, "overview")

	// A queue declared over AMQP appears in the list the page shows.
	run(t, ctx, "open the queues page", chromedp.Navigate(base+"/queues"), chromedp.WaitVisible(chromedp.CSS("#table table")))
	if _, err := ch.QueueDeclare("console.orders", true, false, false, false, amqp.Table{"x-max-priority": int32(5)}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "the queue declared over AMQP appears",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key="//console.orders"]`)))
	// console.load took messages while the overview was open: its
	// in-rate was shown then; now that publishing stopped it shows 0.0.
	run(t, ctx, "the queues' rates show", waitText(`tr[data-key="//console.load"]`, "0.0"))
	screenshot(t, ctx, shots, "queues")

	if err := ch.QueueBind("console.orders", "orders.#", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "the bindings page lists a binding made over AMQP",
		chromedp.Navigate(base+"/bindings"),
		chromedp.SendKeys(chromedp.CSS("#search"), "orders.#"),
		waitText("#table", "amq.topic"),
		waitText("#table", "Page 1 of 1 · 1 of"),
		chromedp.Navigate(base+"/queues"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key="//console.orders"]`)),
	)

	// Publish a message from its page, then look at it without consuming it.
	run(t, ctx, "publish and get a message from the queue's page",
		click(`tr[data-key="//console.orders"] a`),
		chromedp.WaitVisible(chromedp.CSS("#publish-payload")),
		chromedp.SendKeys(chromedp.CSS("#publish-payload"), "order 42 from the console"),
		chromedp.Click(chromedp.CSS("#publish-submit")),
		waitText("#q-ready", "1"),
		chromedp.Click(chromedp.CSS("#get-submit")),
		waitText("#messages pre.payload", "order 42 from the console"),
	)
	screenshot(t, ctx, shots, "queue")
	// "Requeue" left it there, marked redelivered: an AMQP consumer gets it.
	got, ok, err := ch.Get("console.orders", true)
	if err != nil || !ok || string(got.Body) != "order 42 from the console" || !got.Redelivered {
		t.Fatalf("basic.get after the console's look: ok=%v err=%v body=%q redelivered=%v", ok, err, got.Body, got.Redelivered)
	}

	// Close the AMQP connection from the connections page: the client is
	// told, with the reason. (Connections are named "client -> server".)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	local := conn.LocalAddr().String()
	run(t, ctx, "the channels page lists the connection's channel ",
		chromedp.Navigate(base+"/channels"),
		waitText("#table", local+" -> "),
	)
	run(t, ctx, "close the connection from the connections page",
		chromedp.Navigate(base+"/connections"),
		chromedp.WaitVisible(chromedp.CSS(`button[data-close^="`+local+`"]`)),
		acceptDialogs,
	)
	screenshot(t, ctx, shots, "connections")
	run(t, ctx, "click close", click(`button[data-close^="`+local+`"]`))
	select {
	case err := <-closed:
		if err == nil || err.Code != amqp.ConnectionForced || !strings.Contains(err.Reason, "console") {
			t.Fatalf("connection closed with %v, want 320 naming the console", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not closed")
	}
	run(t, ctx, "the closed connection leaves the list",
		chromedp.WaitNotPresent(chromedp.CSS(`button[data-close^="`+local+`"]`)))

	// A notification that failed goes to the dead letters; retry it there.
	e.hook.setAnswer(func(int, []byte) (int, http.Header) { return http.StatusBadGateway, nil })
	a := submit(t, e.b, webhookNote(e.hook.URL, nil), http.StatusAccepted, nil)
	waitStatus(t, e.b, a.ID, "dead_lettered")
	e.hook.setAnswer(nil)
	run(t, ctx, "the notifications page lists it",
		chromedp.Navigate(base+"/notifications"),
		waitText("#table", a.ID),
		waitText(`#channel-rates tr[data-channel="webhook"]`, "webhook"),
	)
	screenshot(t, ctx, shots, "notifications")
	run(t, ctx, "its page shows the failed attempt",
		chromedp.Navigate(base+"/notification?id="+a.ID),
		waitText("#attempts", "502"),
	)
	run(t, ctx, "the dead letters page lists it",
		chromedp.Navigate(base+"/dead-letters"),
		chromedp.WaitVisible(chromedp.CSS(`button[data-retry="`+a.ID+`"]`)),
	)
	screenshot(t, ctx, shots, "dead-letters")
	run(t, ctx, "retry it", click(`button[data-retry="`+a.ID+`"]`))
	waitStatus(t, e.b, a.ID, "sent")
	if n := len(e.hook.received()); n != 2 {
		t.Fatalf("the webhook was called %d times, want 2 (the failure and the retry)", n)
	}
	run(t, ctx, "it leaves the dead letters",
		chromedp.WaitNotPresent(chromedp.CSS(`button[data-retry="`+a.ID+`"]`)))

	// A vhost added and deleted from the vhosts page.
	run(t, ctx, "add a vhost",
		chromedp.Navigate(base+"/vhosts"),
		chromedp.Click(chromedp.CSS("details.form summary")),
		chromedp.SendKeys(chromedp.CSS(`#vhost-form input[name="name"]`), "console-vh"),
		chromedp.Click(chromedp.CSS(`#vhost-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[data-delete="console-vh"]`)),
	)
	if code := mgmtJSON(t, e.b, "guest", "guest", "GET", "/api/vhosts/console-vh", "", nil); code != http.StatusOK {
		t.Fatalf("the vhost added in the console: %d", code)
	}
	run(t, ctx, "delete it",
		acceptDialogs,
		click(`button[data-delete="console-vh"]`),
		chromedp.WaitNotPresent(chromedp.CSS(`button[data-delete="console-vh"]`)),
	)
	if code := mgmtJSON(t, e.b, "guest", "guest", "GET", "/api/vhosts/console-vh", "", nil); code != http.StatusNotFound {
		t.Fatalf("the vhost deleted in the console: %d", code)
	}

	// A template previewed with sample data.
	if code := apiCall(t, e.b, "PUT", "/api/v1/templates/otp", map[string]any{"default_locale": "en", "locales": map[string]any{
		"en": map[string]any{"subject": "Your code {{.code}}", "text": "Use {{.code}} within 5 minutes.", "html": "<p>Use <b>{{.code}}</b></p>"},
		"ko": map[string]any{"subject": "인증번호 {{.code}}", "text": "{{.code}}"}}}, nil, nil); code != http.StatusCreated {
		t.Fatalf("PUT template: %d", code)
	}
	run(t, ctx, "preview a template",
		chromedp.Navigate(base+"/templates"),
		chromedp.WaitReady(chromedp.CSS(`#preview-id option[value="otp"]`)),
		chromedp.Click(chromedp.CSS(`#preview-form button[type="submit"]`)),
		waitText("#preview-subject", "Your code 123456"),
		waitText("#preview-text", "Use 123456 within 5 minutes."),
	)
	screenshot(t, ctx, shots, "templates")
}

// A monitoring user sees the lists but no control that changes anything,
// and the API refuses the change all the same.
func TestConsoleMonitoringReadOnly(t *testing.T) {
	ctx := browser(t)
	b := testutil.StartBroker(t, testutil.WithProtocols(testutil.AMQP, testutil.HTTP),
		testutil.WithConfig(func(c *config.Config) { c.ConsoleRefresh = 200 * time.Millisecond }))
	put := func(path, body string) int {
		req, _ := http.NewRequest("PUT", b.HTTPURL+path, strings.NewReader(body))
		req.SetBasicAuth("guest", "guest")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put("/api/users/watcher", `{"password": "w4tch", "tags": "monitoring"}`); code != http.StatusCreated {
		t.Fatalf("PUT user: %d", code)
	}
	if code := put("/api/permissions/%2F/watcher", `{"configure": ".*", "write": ".*", "read": ".*"}`); code/100 != 2 {
		t.Fatalf("PUT permissions: %d", code)
	}
	if code := put("/api/queues/%2F/watched", `{"durable": true}`); code != http.StatusCreated {
		t.Fatalf("PUT queue: %d", code)
	}
	login(t, ctx, b.HTTPURL, "watcher", "w4tch")
	run(t, ctx, "the queues page shows the queue",
		chromedp.Navigate(b.HTTPURL+"/queues"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key="//watched"]`)),
		waitText("#who", "read-only"),
	)
	controls, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#declare, #purge, #delete').length`))
	if err != nil {
		t.Fatal(err)
	}
	if controls != 0 {
		t.Fatalf("%d controls that change things shown to a monitoring user", controls)
	}
	// The session's own API calls are refused too: the page cannot be
	// fooled into changing anything.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch('/api/queues/%2F/watched', {method: 'DELETE'}).then(r => r.status)`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusUnauthorized {
		t.Fatalf("DELETE through a monitoring session: %d, want 401", status)
	}
	// Logging out ends the session: its cookie no longer opens a page.
	run(t, ctx, "log out",
		chromedp.Click(chromedp.CSS(`form.logout button`)),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.Navigate(b.HTTPURL+"/queues"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
	)
}
